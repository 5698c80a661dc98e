-- Errors of training, registry and serving: SQLSTATEs and messages.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(38);

CREATE TABLE inter AS SELECT (g % 20)::bigint AS user_id, (g % 13)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 200) g;
SELECT lives_ok($$SELECT train('pop', 'popularity', 'inter')$$, 'train popularity');
SELECT lives_ok($$SELECT train('als', 'als', 'inter', '{"factors": 4, "iterations": 2}')$$, 'train als');
SELECT lives_ok($$SELECT train('knn', 'itemknn', 'inter')$$, 'train itemknn');

-- training input
SELECT throws_ok($$SELECT als_fit(1, 1, -1, '{}')$$, '22000', 'interaction weight must not be negative, not "-1"', 'negative weight');
SELECT throws_ok($$SELECT popularity_fit(1, 1, 'NaN', '{}')$$, '22000', 'interaction weight must be finite, not "NaN"', 'NaN weight');
SELECT throws_ok($$SELECT itemknn_fit(1, 1, 'Infinity', '{}')$$, '22000', 'interaction weight must be finite, not "Infinity"', 'infinite weight');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '{"factor": 3}')$$, '22023', 'unknown option "factor"', 'unknown option');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '{"factors": 0}')$$, '22023', 'option "factors" must be between 1 and 1024, not 0', 'option out of range');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '{"alpha": "x"}')$$, '22023', 'option "alpha" must be a number', 'option of the wrong type');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '[1]')$$, '22023', 'options must be a jsonb object', 'options not an object');
SELECT ok((SELECT als_fit(NULL::bigint, 1, 1, '{}')) IS NULL, 'only NULL ids: no model');
SELECT ok((SELECT popularity_fit(user_id, item_id, weight, '{}') FROM inter WHERE false) IS NULL, 'no rows: no model');

-- registry
SELECT throws_ok($$SELECT train('x', 'svd', 'inter')$$, '22023', 'unknown algorithm "svd"', 'unknown algorithm');
SELECT throws_ok($$SELECT train('x', 'als', 'no_such_table')$$, '42P01', NULL, 'unknown source table');
SELECT throws_ok($$SELECT train('x', 'als', 'SELECT * FROM inter WHERE false')$$, '22023', NULL, 'empty source');
SELECT throws_ok($$SELECT train('x', 'als', 'inter', '{"activate": 1}')$$, '22023', 'option "activate" must be a boolean', 'activate not boolean');
SELECT throws_ok($$SELECT train(NULL, 'als', 'inter')$$, '22004', NULL, 'NULL model name');
SELECT throws_ok($$SELECT activate('nope', 1)$$, '42704', 'model "nope" does not exist', 'activate unknown model');
SELECT throws_ok($$SELECT activate('pop', 9)$$, '42704', 'model "pop" has no version 9', 'activate unknown version');
SELECT throws_ok($$SELECT drop_model('nope')$$, '42704', 'model "nope" does not exist', 'drop unknown model');

-- serving
SELECT throws_ok($$SELECT * FROM recommend('nope', 1)$$, '42704', 'model "nope" does not exist', 'unknown model');
SELECT throws_ok($$SELECT * FROM recommend('als', 1, 0)$$, '22023', 'k must be between 1 and the item count 13 of model "als", not 0', 'k = 0');
SELECT throws_ok($$SELECT * FROM recommend('als', 1, 14)$$, '22023', 'k must be between 1 and the item count 13 of model "als", not 14', 'k > items');
SELECT throws_ok($$SELECT * FROM recommend('als', 1, NULL)$$, '22004', 'k must not be NULL', 'NULL k');
SELECT throws_ok($$SELECT * FROM recommend('als', 1, 3, true, '{1,NULL}')$$, '22004', 'candidates must not contain NULL', 'NULL candidate');
SELECT throws_ok($$SELECT * FROM recommend_for('als', '{1,2}', '{1}')$$, '2202E', 'items and weights must have the same length, not 2 and 1', 'weights length');
SELECT throws_ok($$SELECT * FROM recommend_for('als', '{1}', '{-1}')$$, '22000', NULL, 'negative fold-in weight');
SELECT throws_ok($$SELECT * FROM similar_items('pop', 1)$$, '0A000', 'model "pop" is a popularity model and has no item similarities', 'similar_items on popularity');
SELECT lives_ok($$SELECT model_import('pop_imported', model_export('pop', 1), true)$$, 'import a popularity model');
SELECT throws_ok($$SELECT * FROM recommend_all('pop_imported')$$, '0A000', 'popularity model "pop_imported" does not know the source it was trained from', 'recommend_all on a popularity model without source');
SELECT throws_ok($$SELECT * FROM item_embeddings('knn')$$, '0A000', 'model "knn" has no embeddings', 'embeddings of item-kNN');
SELECT is((SELECT count(*) FROM similar_items('als', 424242)), 0::bigint, 'unknown item: no similar items');
UPDATE models SET active = false WHERE name = 'als';
SELECT throws_ok($$SELECT * FROM recommend('als', 1)$$, '55000', 'model "als" has no active version', 'no active version');

-- the model type rejects bad input
SELECT throws_ok($$SELECT 'abc'::model$$, '22P02', 'invalid input syntax for type model', 'model text without \x');
SELECT throws_ok($$SELECT ('\x' || repeat('00', 200))::model$$, 'XX001', NULL, 'corrupt model value');

-- pg_dump carries the models: the catalog table is extension configuration
SELECT ok((SELECT 'personalize.models'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'pg_personalize'),
          'personalize.models is dumped with the data (pg_extension_config_dump)');

-- the training threads' niceness: 0 to 19, and a training at 0 gives the same model as at 19
SELECT throws_ok($$SET LOCAL personalize.training_nice = 20$$, '22023', NULL, 'training_nice above 19 is refused');
CREATE TEMP TABLE nice_rows AS SELECT (g % 50)::bigint AS user_id, ((g * 7) % 40)::bigint AS item_id, 1::real AS weight FROM generate_series(1, 900) g;
SET LOCAL personalize.training_nice = 0;
SELECT train('nice_0', 'als', 'nice_rows', '{"factors": 8, "iterations": 3}');
SET LOCAL personalize.training_nice = 19;
SELECT train('nice_19', 'als', 'nice_rows', '{"factors": 8, "iterations": 3}');
SELECT results_eq($$SELECT id, embedding::text FROM item_embeddings('nice_0') ORDER BY id$$,
                  $$SELECT id, embedding::text FROM item_embeddings('nice_19') ORDER BY id$$,
                  'a training at niceness 19 gives the same factors as at 0');
SELECT * FROM finish();
ROLLBACK;
