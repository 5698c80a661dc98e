-- Models stored in chunks: a model over personalize.model_value_limit (lowered
-- here from 1 GB so the test stays small) is a handle that train stores, and
-- serves the same as the same model trained as a value; a handle is refused
-- after its transaction; a failed training leaves no version and no chunk.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(19);

-- 20,000 users x 64 factors: 5 MB of user factors, two chunks
CREATE TABLE clicks AS SELECT (g % 20000)::bigint AS user_id, (g * 7 % 97)::bigint AS item_id, (1 + g % 3)::real AS weight
FROM generate_series(1, 60000) g;
SELECT is(train('as_value', 'als', 'clicks', '{"factors": 64, "iterations": 2}'), 1, 'a model as a value');
SET LOCAL personalize.model_value_limit = 1024;
SELECT is(train('as_handle', 'als', 'clicks', '{"factors": 64, "iterations": 2}'), 1, 'the same model over the value limit');
SELECT CASE WHEN model_cache_mode() = 'shared' THEN
  is((SELECT state || ' ' || (bytes >= (SELECT m.bytes FROM models m WHERE m.name = 'as_handle'))
      FROM model_cache() WHERE name = 'as_handle' AND shared), 'ready true',
     'trained in shared memory, it is the shared copy already (before commit, no second copy)')
  ELSE skip('backend mode (not preloaded): no shared copy', 1) END;
SELECT is(train('knn_handle', 'itemknn', 'clicks', '{"neighbors": 10}'), 1, 'an item-kNN model over the limit');
SELECT is(train('pop_handle', 'popularity', 'clicks'), 1, 'a popularity model over the limit');
SELECT is((SELECT length(als_fit(user_id, item_id, weight, '{"factors": 16, "iterations": 1}')::text::bytea) FROM clicks) > 1024,
          true, 'a handle is written out as the image it stands for while its transaction lasts');
SELECT cmp_ok((SELECT bytes FROM models WHERE name = 'as_handle'), '>', 4 * 1024 * 1024::bigint,
              'the model is larger than one chunk');
SELECT is((SELECT count(*) FROM model_chunks WHERE name = 'as_handle'),
          (SELECT (bytes + 4 * 1024 * 1024 - 1) / (4 * 1024 * 1024) FROM models WHERE name = 'as_handle'),
          'stored in 4 MB chunks');
SELECT is((SELECT string_agg(bytes::text, '' ORDER BY chunk) FROM model_chunks WHERE name = 'as_handle'),
          (SELECT string_agg(bytes::text, '' ORDER BY chunk) FROM model_chunks WHERE name = 'as_value'),
          'the stored image equals the one trained as a value, byte for byte');
SELECT results_eq($$SELECT r.* FROM generate_series(0, 19999, 997) u, LATERAL recommend('as_handle', u, 5) r$$,
                  $$SELECT r.* FROM generate_series(0, 19999, 997) u, LATERAL recommend('as_value', u, 5) r$$,
                  'and serves the same');

-- erasure rewrites the stored chunks piece by piece: the same bytes as
-- model_without_user on the whole value, numbered after the old chunks
CREATE TEMP TABLE before_forget AS SELECT model_export('as_handle', 1) AS m;
SELECT is(model_forget_user('as_handle', 1, 12345), (SELECT (model_info(model_without_user(m, 12345)) ->> 'bytes')::bigint FROM before_forget),
          'a known user: the image loses the user''s id, factors, row start and pairs');
SELECT is(model_export('as_handle', 1)::text, (SELECT model_without_user(m, 12345)::text FROM before_forget),
          'the rewritten image is model_without_user of the old one, byte for byte');
SELECT is((SELECT min(chunk) FROM model_chunks WHERE name = 'as_handle'), 2, 'in new chunks, after the old ones');
SELECT is(model_forget_user('as_handle', 1, 12345), NULL, 'an unknown user: nothing to rewrite');

-- a handle kept past its transaction (dblink: another session, one transaction per call)
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('handles', format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                        split_part(current_setting('unix_socket_directories'), ',', 1))) IS NOT NULL AS connected;
SELECT dblink_exec('handles', 'SET personalize.model_value_limit = 1024');
SELECT dblink_exec('handles', $q$CREATE TEMP TABLE kept AS SELECT personalize.popularity_fit(g, g, 1, '{}') AS m FROM generate_series(1, 500) g$q$);
SELECT throws_ok($$SELECT * FROM dblink('handles', 'SELECT personalize.model_info(m)::text FROM kept') AS t(x text)$$,
                 '55000', NULL, 'a handle after its transaction is an error (55000)');
SELECT throws_like($$SELECT * FROM dblink('handles', 'SELECT personalize.model_info(m)::text FROM kept') AS t(x text)$$,
                   'model of % bytes is no longer available', 'that says so');
-- a training cancelled while it holds its image leaves no version, no chunk, no memory
SELECT dblink_exec('handles', $q$CREATE TABLE public.storage_wide AS SELECT (g % 20000)::bigint AS user_id,
  (g * 7 % 97)::bigint AS item_id, 1::real AS weight FROM generate_series(1, 60000) g$q$);
SELECT dblink_exec('handles', $q$SET statement_timeout = '300ms'$q$);
SELECT is((SELECT count(*) FROM dblink('handles', $q$SELECT personalize.train('cancelled', 'als', 'public.storage_wide',
  '{"factors": 64, "iterations": 100000}')$q$, false) AS t(v int)), 0::bigint, 'the training is cancelled');
SELECT dblink_exec('handles', 'SET statement_timeout = 0');
SELECT is((SELECT x FROM dblink('handles', $q$SELECT (SELECT count(*) FROM personalize.models WHERE name = 'cancelled') ||
  '/' || (SELECT count(*) FROM personalize.model_chunks WHERE name = 'cancelled') || '/' ||
  (SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'personalize model image')$q$) AS t(x text)), '0/0/0',
  'no version, no chunk, and no image left in memory');
SELECT is((SELECT x FROM dblink('handles', $q$SELECT personalize.train('stored', 'als', 'public.storage_wide',
  '{"factors": 64, "iterations": 1}') || '/' ||
  (SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'personalize model image')$q$) AS t(x text)), '1/0',
  'a stored handle''s image is freed as soon as it is written');
SELECT dblink_exec('handles', 'DROP TABLE public.storage_wide');
SELECT * FROM dblink('handles', $q$SELECT personalize.drop_model('stored')::text$q$) AS t(x text);
SELECT dblink_disconnect('handles');

SELECT * FROM finish();
ROLLBACK;
