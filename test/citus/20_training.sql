-- Citus suite, training: ALS from a table distributed by user_id is trained on
-- the nodes and equals single-node training on the same rows (a local copy)
-- with the same seed: same ids, pairs and counts, factors to float rounding,
-- the same held-out NDCG@10. Errors on the nodes stop the training cleanly.
SET client_min_messages = warning;
SELECT plan(26);

SET client_min_messages = error;
CREATE FUNCTION pg_temp.q(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE v numeric;
BEGIN
	EXECUTE query INTO v;
	RETURN v;
END $$;
SET client_min_messages = warning;

-- 400 users, 120 items, skewed popularity, some duplicate pairs, one NULL row;
-- a fifth of each user's pairs (by hash) held out
CREATE TABLE public.all_pairs AS
SELECT u AS user_id,
       floor(120 * power(('x' || substr(md5(u || ':' || k), 1, 8))::bit(32)::bigint / 4294967296.0, 2))::bigint AS item_id,
       (1 + k % 3)::real AS weight,
       ('x' || substr(md5('h' || u || ':' || k), 1, 8))::bit(32)::bigint % 5 = 0 AS heldout
FROM generate_series(1, 400) u, generate_series(1, 8 + u % 17) k;
CREATE TABLE public.train_local AS SELECT user_id, item_id, weight FROM public.all_pairs WHERE NOT heldout;
INSERT INTO public.train_local VALUES (5, 1, NULL);
CREATE TABLE public.heldout AS SELECT DISTINCT user_id, item_id FROM public.all_pairs WHERE heldout;
CREATE TABLE public.train_dist (LIKE public.train_local);
SELECT create_distributed_table('public.train_dist', 'user_id', shard_count => 8);
INSERT INTO public.train_dist SELECT * FROM public.train_local;
CREATE TABLE public.by_item (LIKE public.train_local);
SELECT create_distributed_table('public.by_item', 'item_id', shard_count => 4);
INSERT INTO public.by_item SELECT * FROM public.train_local;
CREATE VIEW public.train_view AS SELECT * FROM public.train_dist;

SELECT is(personalize.distributed_training_source(personalize.source_sql('public.train_dist')), 'public.train_dist'::regclass,
	'a table distributed by user_id is trained on the nodes');
SELECT is(personalize.distributed_training_source(personalize.source_sql('public.by_item')), NULL,
	'a table distributed by another column is gathered');
SELECT is(personalize.distributed_training_source(personalize.source_sql('public.train_view')), NULL, 'so is a view');
SELECT is(personalize.distributed_training_source(personalize.source_sql('SELECT * FROM public.train_dist')), NULL, 'and a query');
SELECT is(personalize.distributed_training_source(personalize.source_sql('public.train_local')), NULL, 'and a local table');

\set opts '{"factors": 8, "iterations": 6, "seed": 3, "calculate_loss": true}'
SELECT personalize.train('single', 'als', 'public.train_local', :'opts');
SELECT personalize.train('nodes', 'als', 'public.train_dist', :'opts');
SELECT personalize.train('gathered', 'als', 'public.by_item', :'opts');

SELECT is((SELECT personalize.model_info(personalize.model_export('nodes', 1)) - 'bytes' - 'loss'),
          (SELECT personalize.model_info(personalize.model_export('single', 1)) - 'bytes' - 'loss'),
	'same rows, NULL rows, users, items, pairs and options');
SELECT is((SELECT (personalize.model_info(personalize.model_export('nodes', 1)) ->> 'bytes')::bigint),
          (SELECT (personalize.model_info(personalize.model_export('single', 1)) ->> 'bytes')::bigint),
	'the same model size');
SELECT results_eq($$SELECT id FROM personalize.user_embeddings('nodes') ORDER BY id$$,
                  $$SELECT id FROM personalize.user_embeddings('single') ORDER BY id$$, 'the same users in the same order');
SELECT results_eq($$SELECT id FROM personalize.item_embeddings('nodes') ORDER BY id$$,
                  $$SELECT id FROM personalize.item_embeddings('single') ORDER BY id$$, 'the same items in the same order');
-- seen items: recommending every item to every user, with seen items excluded, leaves the same pairs out
SELECT is((SELECT count(*) FROM (
	SELECT u.id, r.item_id FROM personalize.user_embeddings('nodes') u, LATERAL personalize.recommend('nodes', u.id, 120) r
	EXCEPT SELECT u.id, r.item_id FROM personalize.user_embeddings('single') u, LATERAL personalize.recommend('single', u.id, 120) r) d), 0::bigint,
	'the same seen items per user');

CREATE TABLE public.factor_diff AS
SELECT 'user' AS side, max(abs(x - y))::float8 AS diff, max(abs(y))::float8 AS scale
FROM personalize.user_embeddings('nodes') a JOIN personalize.user_embeddings('single') b USING (id),
     LATERAL unnest(a.embedding::real[], b.embedding::real[]) v(x, y)
UNION ALL
SELECT 'item', max(abs(x - y)), max(abs(y))
FROM personalize.item_embeddings('nodes') a JOIN personalize.item_embeddings('single') b USING (id),
     LATERAL unnest(a.embedding::real[], b.embedding::real[]) v(x, y);
SELECT cmp_ok((SELECT diff / scale FROM public.factor_diff WHERE side = 'user'), '<', 2e-3::float8,
	'user factors equal to float rounding (max difference / max factor)');
SELECT cmp_ok((SELECT diff / scale FROM public.factor_diff WHERE side = 'item'), '<', 2e-3::float8,
	'item factors equal to float rounding');
SELECT cmp_ok((SELECT abs(n.loss - s.loss) / s.loss FROM
	(SELECT (personalize.model_info(personalize.model_export('nodes', 1)) ->> 'loss')::float8 AS loss) n,
	(SELECT (personalize.model_info(personalize.model_export('single', 1)) ->> 'loss')::float8 AS loss) s),
	'<', 1e-4::float8, 'the same loss');

-- held-out NDCG@10, seen items excluded
SET client_min_messages = error;
CREATE FUNCTION pg_temp.ndcg(model text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE v float8;
BEGIN
	DROP TABLE IF EXISTS pg_temp.recs;
	CREATE TEMP TABLE recs AS
	SELECT u.user_id, r.item_id, r.rank FROM (SELECT DISTINCT user_id FROM public.heldout) u,
	LATERAL personalize.recommend(model, u.user_id, 10) r;
	SELECT ndcg_at_k INTO v FROM personalize.ranking_metrics('pg_temp.recs', 'public.heldout', 10);
	RETURN v;
END $$;
SET client_min_messages = warning;
SELECT cmp_ok(abs(pg_temp.ndcg('nodes') - pg_temp.ndcg('single')), '<', 1e-3::float8, 'the same held-out NDCG@10');
SELECT is((SELECT personalize.model_export('gathered', 1)::text),
          (SELECT personalize.model_export('single', 1)::text), 'a gathered table trains the single-node model exactly');

SELECT personalize.train('single0', 'als', 'public.train_local', '{"factors": 8, "iterations": 0, "seed": 3}');
SELECT personalize.train('nodes0', 'als', 'public.train_dist', '{"factors": 8, "iterations": 0, "seed": 3}');
SELECT is((SELECT personalize.model_export('nodes0', 1)::text),
          (SELECT personalize.model_export('single0', 1)::text),
	'without iterations the models are byte for byte equal (starting factors drawn from the same stream)');

-- a transaction that already holds several connections per node (a slow parallel query first)
CREATE FUNCTION public.slow_backend(x bigint) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_catalog.pg_sleep(0.001);
	RETURN pg_catalog.inet_server_port() || ':' || pg_catalog.pg_backend_pid();
END $$;
BEGIN;
CREATE TEMP TABLE backends AS SELECT DISTINCT public.slow_backend(user_id) AS b FROM public.train_dist WHERE user_id % 4 = 0;
SELECT personalize.train('in_block', 'als', 'public.train_dist', :'opts');
COMMIT;
SELECT cmp_ok((SELECT count(*) FROM backends), '>', 2::bigint,
	'(the transaction had opened more than one connection per worker before training)');
SELECT is((SELECT personalize.model_export('in_block', 1)::text),
          (SELECT personalize.model_export('nodes', 1)::text),
	'trained inside a transaction that holds other connections: the same model');
SELECT is((SELECT count(*) FROM personalize.train_runs), 0::bigint, 'no run row is left behind');

-- errors on a node stop the training; nothing is stored
SELECT is(pg_temp.q($q$SELECT count(*) FROM personalize.models$q$), 6::numeric, 'six models so far');
INSERT INTO public.train_dist VALUES (77, 5, -1);
SELECT throws_ok($$SELECT personalize.train('bad', 'als', 'public.train_dist', '{}')$$, '22000',
	'interaction weight must not be negative, not "-1"', 'a negative weight on a node is an error');
DELETE FROM public.train_dist WHERE weight < 0;
INSERT INTO public.train_dist VALUES (78, 5, 'NaN');
SELECT throws_ok($$SELECT personalize.train('bad', 'als', 'public.train_dist', '{}')$$, '22000',
	'interaction weight must be finite, not "NaN"', 'so is NaN');
DELETE FROM public.train_dist WHERE weight = 'NaN';
SELECT throws_ok($$SELECT personalize.train('bad', 'als', 'public.train_dist', '{"factors": 0}')$$, '22023', NULL,
	'options are checked as for single-node training');
SELECT throws_ok($$SELECT personalize.train('bad', 'als', 'public.train_dist', '{"colour": 1}')$$, '22023', NULL,
	'unknown options are refused');
CREATE TABLE public.empty_dist (user_id bigint, item_id bigint, weight real);
SELECT create_distributed_table('public.empty_dist', 'user_id', shard_count => 4);
SELECT throws_ok($$SELECT personalize.train('bad', 'als', 'public.empty_dist', '{}')$$, '22023', NULL,
	'an empty distributed table has no interactions');
SELECT is(pg_temp.q($q$SELECT count(*) FROM personalize.models$q$), 6::numeric, 'no model was stored by the failures');

DROP VIEW public.train_view;
DROP FUNCTION public.slow_backend(bigint);
DROP TABLE public.all_pairs, public.train_local, public.heldout, public.train_dist, public.by_item, public.factor_diff,
	public.empty_dist;
SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models) m;
SELECT * FROM finish();
