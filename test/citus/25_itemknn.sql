-- Citus suite, item-kNN: from a table distributed by user_id the co-occurrence
-- sums are computed on the nodes, range of items by range of items, and the
-- model equals single-node training on the same rows (a local copy): the same
-- ids, seen pairs, neighbours and similarities, the same recommendations.
-- Errors on the nodes stop the training cleanly.
SET client_min_messages = warning;
SELECT plan(21);

SET client_min_messages = error;
CREATE FUNCTION pg_temp.q(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE v numeric;
BEGIN
	EXECUTE query INTO v;
	RETURN v;
END $$;
SET check_function_bodies = off;
-- neighbour lists of two models side by side: (item, rank) -> neighbour and similarity of each
CREATE FUNCTION pg_temp.neighbours(a text, b text)
RETURNS TABLE (item bigint, rank integer, na bigint, nb bigint, sa real, sb real) LANGUAGE sql AS $$
	SELECT i.id, coalesce(x.rank, y.rank), x.item_id, y.item_id, x.score, y.score
	FROM (SELECT DISTINCT l.item_id AS id FROM public.knn_local l WHERE l.weight IS NOT NULL) i,
	LATERAL (SELECT s.item_id, s.score, s.rank FROM personalize.similar_items(a, i.id, 12) s) x
	FULL JOIN LATERAL (SELECT s.item_id, s.score, s.rank FROM personalize.similar_items(b, i.id, 12) s) y USING (rank)
$$;
RESET check_function_bodies;
SET client_min_messages = warning;

-- 300 users, 90 items, skewed popularity, duplicate pairs, one NULL row; integer weights
-- (sums exact in float, whatever their order) and fractional ones (sums rounded)
CREATE TABLE public.knn_local AS
SELECT u AS user_id,
       floor(90 * power(('x' || substr(md5(u || ':' || k), 1, 8))::bit(32)::bigint / 4294967296.0, 2))::bigint AS item_id,
       (1 + k % 3)::real AS weight,
       (0.5 + ('x' || substr(md5('w' || u || ':' || k), 1, 8))::bit(32)::bigint / 4294967296.0)::real AS fraction
FROM generate_series(1, 300) u, generate_series(1, 6 + u % 13) k;
INSERT INTO public.knn_local VALUES (5, 1, NULL, NULL);
CREATE TABLE public.knn_dist (LIKE public.knn_local);
SELECT create_distributed_table('public.knn_dist', 'user_id', shard_count => 6);
INSERT INTO public.knn_dist SELECT * FROM public.knn_local;
CREATE TABLE public.knn_local_f AS SELECT user_id, item_id, fraction AS weight FROM public.knn_local;
CREATE TABLE public.knn_dist_f AS SELECT user_id, item_id, fraction AS weight FROM public.knn_local;
SELECT create_distributed_table('public.knn_dist_f', 'user_id', shard_count => 5);

\set opts '{"neighbors": 12}'
SELECT personalize.train('single', 'itemknn', 'public.knn_local', :'opts');
SELECT personalize.train('nodes', 'itemknn', 'public.knn_dist', :'opts');

SELECT is((SELECT personalize.model_info(personalize.model_export('nodes', 1))),
          (SELECT personalize.model_info(personalize.model_export('single', 1))),
	'same rows, NULL rows, users, items, pairs, options and size');
SELECT is((SELECT count(*) FROM pg_temp.neighbours('nodes', 'single')
           WHERE na IS DISTINCT FROM nb OR sa IS DISTINCT FROM sb), 0::bigint,
	'the same neighbours in the same order with the same similarities (integer weights: exact sums)');
SELECT cmp_ok((SELECT count(*) FROM pg_temp.neighbours('nodes', 'single')), '>', 500::bigint,
	'(the models have neighbours to compare)');
SELECT is((SELECT personalize.model_export('nodes', 1)::text), (SELECT personalize.model_export('single', 1)::text),
	'so the models are byte for byte equal');
SELECT is((SELECT count(*) FROM (
	SELECT u.user_id, r.item_id, r.score FROM (SELECT DISTINCT user_id FROM public.knn_local) u, LATERAL personalize.recommend('nodes', u.user_id, 90) r
	EXCEPT SELECT u.user_id, r.item_id, r.score FROM (SELECT DISTINCT user_id FROM public.knn_local) u, LATERAL personalize.recommend('single', u.user_id, 90) r) d),
	0::bigint, 'the same recommendations (seen items excluded) with the same scores');

-- a small range: the coordinator sums 7 rows of the item-item matrix at a time (13 ranges)
SELECT is((SELECT personalize.itemknn_fit_distributed('public.knn_dist', :'opts', 7)::text),
          (SELECT personalize.model_export('single', 1)::text), 'ranges of 7 items: the same model');
SELECT is((SELECT personalize.itemknn_fit_distributed('public.knn_dist', :'opts', 1)::text),
          (SELECT personalize.model_export('single', 1)::text), 'ranges of one item: the same model');
SELECT is((SELECT personalize.itemknn_fit_distributed('public.knn_dist', '{"neighbors": 5, "shrinkage": 3}', 40)::text),
          (SELECT personalize.itemknn_fit(user_id, item_id, weight, '{"neighbors": 5, "shrinkage": 3}')::text
           FROM public.knn_local),
	'with shrinkage and fewer neighbours: the same model');

-- fractional weights: the nodes' partial sums are added in another order, equal to float rounding
SELECT personalize.train('single_f', 'itemknn', 'public.knn_local_f', :'opts');
SELECT personalize.train('nodes_f', 'itemknn', 'public.knn_dist_f', :'opts');
SELECT is((SELECT personalize.model_info(personalize.model_export('nodes_f', 1))),
          (SELECT personalize.model_info(personalize.model_export('single_f', 1))),
	'fractional weights: same counts, options and size');
SELECT cmp_ok((SELECT max(abs(sa - sb) / sb) FROM pg_temp.neighbours('nodes_f', 'single_f'))::float8, '<', 1e-5::float8,
	'the similarity at each rank equal to float rounding');
-- neighbours may swap places only where their similarities tie to float rounding
SELECT is((SELECT count(*) FROM pg_temp.neighbours('nodes_f', 'single_f') n
           WHERE n.na IS DISTINCT FROM n.nb
             AND NOT EXISTS (SELECT FROM pg_temp.neighbours('nodes_f', 'single_f') m
                             WHERE m.item = n.item AND m.nb = n.na AND abs(m.sb - n.sb) <= 1e-5 * n.sb)),
	0::bigint, 'the same neighbours (up to swaps among similarities equal to float rounding)');
SELECT cmp_ok((SELECT count(*) FROM (
	SELECT u.user_id, r.item_id FROM (SELECT DISTINCT user_id FROM public.knn_local) u, LATERAL personalize.recommend('nodes_f', u.user_id, 10) r
	INTERSECT SELECT u.user_id, r.item_id FROM (SELECT DISTINCT user_id FROM public.knn_local) u, LATERAL personalize.recommend('single_f', u.user_id, 10) r) d)::float8
	/ (SELECT count(*) FROM (SELECT DISTINCT user_id FROM public.knn_local) u, LATERAL personalize.recommend('single_f', u.user_id, 10) r),
	'>=', 0.99::float8, 'the same top-10 recommendations (99% of them at least, ties aside)');
SELECT is((SELECT count(*) FROM personalize.train_runs), 0::bigint, 'no run row is left behind');

-- errors on a node stop the training; nothing is stored
SELECT is(pg_temp.q($q$SELECT count(*) FROM personalize.models$q$), 4::numeric, 'four models so far');
INSERT INTO public.knn_dist VALUES (77, 5, -1);
SELECT throws_ok($$SELECT personalize.train('bad', 'itemknn', 'public.knn_dist', '{}')$$, '22000',
	'interaction weight must not be negative, not "-1"', 'a negative weight on a node is an error');
DELETE FROM public.knn_dist WHERE weight < 0;
INSERT INTO public.knn_dist VALUES (78, 5, 'Infinity');
SELECT throws_ok($$SELECT personalize.train('bad', 'itemknn', 'public.knn_dist', '{}')$$, '22000',
	'interaction weight must be finite, not "Infinity"', 'so is Infinity');
DELETE FROM public.knn_dist WHERE weight = 'Infinity';
SELECT throws_ok($$SELECT personalize.train('bad', 'itemknn', 'public.knn_dist', '{"neighbors": 0}')$$, '22023', NULL,
	'options are checked as for single-node training');
SELECT throws_ok($$SELECT personalize.train('bad', 'itemknn', 'public.knn_dist', '{"factors": 8}')$$, '22023', NULL,
	'options of other algorithms are refused');
SELECT throws_ok($$SELECT personalize.itemknn_fit_distributed('public.knn_dist', '{}', -1)$$, '22023',
	'range_items must not be negative, not -1', 'a negative range is refused');
CREATE TABLE public.knn_empty (user_id bigint, item_id bigint, weight real);
SELECT create_distributed_table('public.knn_empty', 'user_id', shard_count => 4);
SELECT throws_ok($$SELECT personalize.train('bad', 'itemknn', 'public.knn_empty', '{}')$$, '22023', NULL,
	'an empty distributed table has no interactions');
SELECT is(pg_temp.q($q$SELECT count(*) FROM personalize.models$q$), 4::numeric, 'no model was stored by the failures');


DROP TABLE public.knn_local, public.knn_local_f, public.knn_dist, public.knn_dist_f, public.knn_empty;
SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models) m;
SELECT * FROM finish();
