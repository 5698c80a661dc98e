-- One copy per server: with pg_personalize in shared_preload_libraries (as the
-- test clusters run it) a version is loaded into shared memory once, before the
-- transaction that trains or activates it commits, and mapped by every backend
-- that serves it; replaced, dropped and rolled-back versions are freed once no
-- backend maps them; a cancelled load leaves nothing behind; and backend mode
-- (personalize.shared_models = off, as without preloading) serves the same.
-- Other sessions are dblink connections: every call commits on its own.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT personalize.model_cache_mode() = 'shared' AS preloaded \gset
\if :preloaded
SELECT plan(19);
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE FUNCTION pg_temp.conninfo() RETURNS text LANGUAGE sql AS
$$SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                split_part(current_setting('unix_socket_directories'), ',', 1))$$;
SELECT dblink_connect(c, pg_temp.conninfo()) IS NOT NULL FROM unnest(ARRAY['cache_setup', 'cache_a', 'cache_b']) c;
CREATE FUNCTION pg_temp.run(conn text, sql text) RETURNS text LANGUAGE sql AS
$$SELECT x FROM dblink(conn, sql) AS t(x text)$$;
-- what the shared directory holds for a model: version:state:backends, by version
CREATE FUNCTION pg_temp.slots(model text) RETURNS text LANGUAGE sql AS
$$SELECT coalesce(string_agg(version || ':' || state || ':' || backends, ' ' ORDER BY version), '')
  FROM personalize.model_cache() WHERE name = model AND shared$$;
CREATE FUNCTION pg_temp.served(conn text, model text) RETURNS text LANGUAGE sql AS
$$SELECT pg_temp.run(conn, format($q$SELECT md5(string_agg(u || ':' || r.item_id || ':' || r.score, ',' ORDER BY u, r.rank))
  FROM generate_series(0, 400, 7) u, LATERAL personalize.recommend(%L, u, 5) r$q$, model))$$;

SELECT is(model_cache_mode(), 'shared', 'the library is preloaded (as test/run.sh runs it): models are shared');
SELECT pg_temp.run('cache_setup', $q$SET client_min_messages = warning;
  CREATE TABLE public.cache_clicks AS SELECT (g % 400)::bigint AS user_id, (g * 7 % 150)::bigint AS item_id,
    1::real AS weight FROM generate_series(1, 8000) g;
  SELECT 'done'$q$);
SELECT is(pg_temp.run('cache_setup', $q$SELECT personalize.train('cache_als', 'als', 'public.cache_clicks', '{"factors": 16, "iterations": 2}')::text$q$),
          '1', 'train version 1');
SELECT is(pg_temp.slots('cache_als'), '1:ready:0', 'loaded into shared memory by train itself, before it committed');
SELECT isnt(pg_temp.served('cache_a', 'cache_als'), NULL, 'a backend serves it');
SELECT is(pg_temp.slots('cache_als'), '1:ready:1', 'mapping the one shared copy');
SELECT is(pg_temp.served('cache_b', 'cache_als'), pg_temp.served('cache_a', 'cache_als'), 'another backend serves the same');
SELECT is(pg_temp.slots('cache_als'), '1:ready:2', 'from the same copy: no second load');
SELECT is(pg_temp.run('cache_b', $q$SET personalize.shared_models = off; SELECT 'done'$q$), 'done', 'backend mode in one session');
SELECT is(pg_temp.served('cache_b', 'cache_als'), pg_temp.served('cache_a', 'cache_als'), 'backend mode serves the same');
SELECT is(pg_temp.run('cache_b', $q$SELECT string_agg(version || ':' || shared, ',') FROM personalize.model_cache() WHERE name = 'cache_als' AND NOT shared$q$),
          '1:false', 'from its own copy');
SELECT pg_temp.run('cache_b', $q$SET personalize.shared_models = on; SELECT 'done'$q$);

-- a new version replaces the old: the old one is freed once its last backend moves on
SELECT is(pg_temp.run('cache_setup', $q$SELECT personalize.train('cache_als', 'als', 'public.cache_clicks', '{"factors": 16, "iterations": 3}')::text$q$),
          '2', 'train version 2');
SELECT is(pg_temp.slots('cache_als'), '1:retired:1 2:ready:0', 'version 2 is ready at commit, version 1 retired but still mapped (by the backend that stayed shared)');
SELECT isnt(pg_temp.served('cache_a', 'cache_als') || pg_temp.served('cache_b', 'cache_als'), NULL, 'both backends serve version 2');
SELECT is(pg_temp.slots('cache_als'), '2:ready:2', 'and version 1 is freed');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_stat_activity WHERE backend_type = 'pg_personalize model reaper'), 1,
          'the model reaper runs: it destroys the segments of freed versions, not the request that freed them');

-- a rolled-back training leaves nothing in shared memory
SELECT pg_temp.run('cache_setup', $q$BEGIN; SELECT personalize.train('cache_als', 'als', 'public.cache_clicks', '{"factors": 16, "iterations": 1}')::text$q$);
SELECT pg_temp.run('cache_setup', $q$ROLLBACK; SELECT 'done'$q$);
SELECT is(pg_temp.slots('cache_als'), '2:ready:2', 'a rolled-back version is freed at once');

-- loads cancelled at every point leave no half-loaded version; the next request loads it
SELECT pg_temp.run('cache_setup', $q$SELECT personalize.train('cache_cold', 'als', 'public.cache_clicks', '{"factors": 64, "iterations": 1, "activate": false}')::text$q$);
SELECT pg_temp.run('cache_setup', $q$UPDATE personalize.models SET active = true WHERE name = 'cache_cold'; SELECT 'done'$q$);
SELECT is(pg_temp.slots('cache_cold'), '', 'activated without prewarm: not loaded yet');
DO $$
BEGIN
  FOR t IN 1..15 LOOP
    PERFORM * FROM dblink('cache_a', format($q$SET statement_timeout = '%sms'; SELECT count(*)::text FROM personalize.recommend('cache_cold', 1, 5)$q$, t), false) AS r(x text);
    IF pg_temp.slots('cache_cold') NOT IN ('', '1:ready:1') THEN
      RAISE EXCEPTION 'after a load cancelled at % ms: %', t, pg_temp.slots('cache_cold');
    END IF;
  END LOOP;
END $$;
SELECT is(pg_temp.run('cache_a', $q$SET statement_timeout = 0; SELECT count(*)::text FROM personalize.recommend('cache_cold', 1, 5)$q$), '5',
          'after cancelled loads: never a half-loaded slot, and the next request is served');

-- a dropped model is freed once its backends move on
SELECT pg_temp.run('cache_setup', $q$SELECT personalize.drop_model('cache_als')::text; SELECT 'done'$q$);
SELECT pg_temp.run(c, $q$SELECT count(*)::text FROM personalize.recommend('cache_cold', 1, 5)$q$) FROM unnest(ARRAY['cache_a', 'cache_b']) c;
SELECT is(pg_temp.slots('cache_als'), '', 'dropped: freed');

SELECT pg_temp.run('cache_setup', $q$SELECT personalize.drop_model('cache_cold')::text; DROP TABLE public.cache_clicks; SELECT 'done'$q$);
SELECT dblink_disconnect(c) FROM unnest(ARRAY['cache_setup', 'cache_a', 'cache_b']) c;
\else
-- not preloaded (backend mode): the other model tests cover serving from private copies
SELECT plan(1);
SELECT skip('pg_personalize is not in shared_preload_libraries: no shared copies to test', 1);
\endif
SELECT * FROM finish();
ROLLBACK;
