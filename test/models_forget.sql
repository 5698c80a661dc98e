-- Erasure reaches into models: after forget(), no model serves, embeds or scores the
-- subject, other users are served exactly as before, and the versions are marked stale.
-- Also: training reads a consent-protected table as the caller.
BEGIN;
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(23);

CREATE TABLE shop_events (user_id bigint, item_id bigint, weight real);
INSERT INTO shop_events
SELECT u, (u * 7 + k * 13) % 60, 1 FROM generate_series(1, 200) u, generate_series(1, 8) k;
SELECT train('forget_als', 'als', 'shop_events', '{"factors": 8, "iterations": 5}') \gset
SELECT train('forget_knn', 'itemknn', 'shop_events', '{"neighbors": 20}') \gset
SELECT train('forget_pop', 'popularity', 'shop_events') \gset
SELECT train('forget_als', 'als', 'shop_events', '{"factors": 8, "iterations": 5, "activate": false}') \gset

SELECT is((SELECT count(*) FROM recommend('forget_als', 42, 5) WHERE reason = 'model'), 5::bigint,
          'before: user 42 is known to ALS');
CREATE TEMP TABLE before AS
SELECT m.model, r.item_id, r.rank, r.score FROM (VALUES ('forget_als'), ('forget_knn')) m(model),
  LATERAL recommend(m.model, 7, 5) r;
SELECT is((SELECT count(*) FROM user_embeddings('forget_als') WHERE id = 42), 1::bigint, 'before: 42 has factors');

CREATE TEMP TABLE result AS SELECT * FROM personalize.forget(42);
-- each version is rewritten once (the old chunks go, the new are numbered after them)
SELECT is((SELECT count(*) FROM personalize.model_chunks c JOIN personalize.models m USING (name, version)
           WHERE m.stale), (SELECT sum(ceil(bytes / 4194304.0))::bigint FROM personalize.models WHERE stale),
          'each rewritten version has exactly the chunks of its new image');
SELECT is((SELECT removed FROM result WHERE object = 'models'), 3::bigint,
          'forget rewrote the three model versions that know 42 (two ALS, one item-kNN; popularity keeps no users)');
SELECT is((SELECT count(*) FROM personalize.models WHERE stale), 3::bigint, 'and marked them stale');
SELECT is((SELECT count(*) FROM personalize.models WHERE stale AND revised_at IS NOT NULL), 3::bigint,
          'with the time of the rewrite');
SELECT is((SELECT array_agg(DISTINCT reason) FROM recommend('forget_als', 42, 5)), ARRAY['popular'],
          'ALS: 42 is now an unknown user (cold start)');
SELECT is((SELECT array_agg(DISTINCT reason) FROM recommend('forget_knn', 42, 5)), ARRAY['popular'],
          'item-kNN: the same');
SELECT is((SELECT count(*) FROM user_embeddings('forget_als') WHERE id = 42), 0::bigint, 'no factors for 42');
SELECT is((SELECT count(*) FROM user_embeddings('forget_als')), 199::bigint, 'the other 199 users keep theirs');
SELECT is((SELECT count(*) FROM recommend_all('forget_als', 3) WHERE user_id = 42), 0::bigint,
          'recommend_all has no rows for 42');
SELECT is((SELECT count(*) FROM recommend_all('forget_als', 3)), 597::bigint, 'but has them for everyone else');
SELECT is((SELECT users FROM personalize.models WHERE name = 'forget_als' AND version = 1), 199::bigint,
          'the catalog counts one user fewer');
SELECT results_eq(
  $$SELECT m.model, r.item_id, r.rank, r.score FROM (VALUES ('forget_als'), ('forget_knn')) m(model),
      LATERAL recommend(m.model, 7, 5) r ORDER BY 1, 3$$,
  $$SELECT * FROM before ORDER BY 1, 3$$,
  'another user is served exactly as before');
SELECT ok(personalize.model_without_user(personalize.model_export('forget_als', 1), 42)
          IS NULL, 'model_without_user: NULL once the user is gone');
SELECT ok(personalize.model_without_user(personalize.model_export('forget_pop', 1), 7)
          IS NULL, 'model_without_user: NULL for a model without users');

-- training as an analyst on a consent-protected table sees only consented subjects
CREATE ROLE forget_analyst;
GRANT USAGE ON SCHEMA personalize TO forget_analyst;
GRANT SELECT ON shop_events TO forget_analyst;
GRANT SELECT ON personalize.consents TO forget_analyst;
GRANT SELECT, INSERT, UPDATE ON personalize.models TO forget_analyst;
GRANT SELECT, INSERT ON personalize.model_chunks TO forget_analyst;
SELECT is((SELECT count(set_consent(u, 'personalization', u % 4 <> 0)) FROM generate_series(1, 200) u), 200::bigint,
          'consent recorded: every fourth user declines');
SELECT protect('shop_events', 'user_id', 'personalization');
SET LOCAL ROLE forget_analyst;
SELECT train('consented_only', 'itemknn', 'shop_events') \gset
RESET ROLE;
SELECT is((SELECT users || '/' || rows FROM personalize.models WHERE name = 'consented_only'), '150/1200',
          'an analyst trains only on the 150 consenting users (1,200 rows)');
CREATE TABLE forget_recs AS SELECT u::bigint AS user_id, ((u * 7 + i * 13) % 60)::bigint AS item_id, i AS rank
FROM generate_series(1, 200) u, generate_series(1, 3) i;
GRANT SELECT ON forget_recs TO forget_analyst;
SET LOCAL ROLE forget_analyst;
SELECT is((SELECT users FROM ranking_metrics('forget_recs', 'shop_events', 3)), 150::bigint,
          'an analyst''s ranking_metrics averages over the 150 consenting users only');
RESET ROLE;

-- a second backend does not keep serving the subject from its cache (committed data, via dblink)
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conn AS
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS s;
SELECT dblink_connect('fg_setup', (SELECT s FROM conn)) IS NOT NULL AS setup;
SELECT dblink_connect('fg_reader', (SELECT s FROM conn)) IS NOT NULL AS reader;
SELECT dblink_exec('fg_setup', $q$CREATE TABLE public.fg_remote AS SELECT (g % 20)::bigint AS user_id,
	((g * 7) % 13)::bigint AS item_id, 1::real AS weight FROM generate_series(1, 240) g$q$);
SELECT * FROM dblink('fg_setup', $q$SET client_min_messages = warning; SELECT personalize.train('fg_remote', 'als', 'public.fg_remote', '{"factors": 4, "iterations": 2}')$q$) AS t(v int);
SELECT is((SELECT array_agg(DISTINCT reason) FROM dblink('fg_reader',
	$q$SELECT reason FROM personalize.recommend('fg_remote', 5, 3)$q$) AS t(reason text)), '{model}',
	'other backend: user 5 served by the model (and now cached there)');
SELECT is((SELECT n FROM dblink('fg_setup', $q$SELECT personalize.forget_in_models(5)$q$) AS t(n int)), 1,
	'forget_in_models, committed in one backend');
SELECT is((SELECT array_agg(DISTINCT reason) FROM dblink('fg_reader',
	$q$SELECT reason FROM personalize.recommend('fg_remote', 5, 3)$q$) AS t(reason text)), '{popular}',
	'other backend: after the committed rewrite, user 5 is a cold start (cache reloaded)');
SELECT is((SELECT n FROM dblink('fg_reader',
	$q$SELECT count(*) FROM personalize.user_embeddings('fg_remote') WHERE id = 5$q$) AS t(n bigint)), 0::bigint,
	'other backend: user_embeddings no longer lists user 5');
SELECT * FROM dblink('fg_setup', $q$SELECT 1 FROM (SELECT personalize.drop_model('fg_remote')) d$q$) AS t(x int);
SELECT dblink_exec('fg_setup', $q$DROP TABLE public.fg_remote$q$);
SELECT dblink_disconnect('fg_reader'), dblink_disconnect('fg_setup');

SELECT * FROM finish();
ROLLBACK;
