-- Errors of the study's other arms (issue 13): bpr, hybrid, dp_popularity, dp_als,
-- editorial, explain, feature minimisation and privacy_report. SQLSTATEs and messages.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(49);

CREATE TABLE inter AS SELECT (g % 20)::bigint AS user_id, (g % 13)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 200) g;
CREATE TABLE feats AS SELECT DISTINCT item_id, 'genre:' || (item_id % 3) AS feature FROM inter;
CREATE TABLE feats_nan AS SELECT item_id, feature, 'NaN'::real AS weight FROM feats;
CREATE TABLE no_feature_column AS SELECT item_id FROM feats;
SELECT lives_ok($$SELECT train('als', 'als', 'inter', '{"factors": 4, "iterations": 2}')$$, 'train als');

-- bpr and hybrid options
SELECT throws_ok($$SELECT bpr_fit(1, 1, 1, '{"factors": 0}')$$, '22023', 'option "factors" must be between 1 and 1023, not 0', 'bpr factors');
SELECT throws_ok($$SELECT bpr_fit(1, 1, 1, '{"learning_rate": 0}')$$, '22023', NULL, 'bpr learning rate');
SELECT throws_ok($$SELECT bpr_fit(1, 1, 1, '{"learning_schedule": "adam"}')$$, '22023',
                 'option "learning_schedule" must be one of sgd, adagrad, not "adam"', 'bpr schedule');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"core": "warp", "loss": "hinge"}')$$, '22023', 'option "loss" must be one of warp, bpr, not "hinge"', 'hybrid loss');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"item_features": 3}')$$, '22023', 'option "item_features" must be a string', 'features source type');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"exclude_features": "genre"}')$$, '22023', 'option "exclude_features" must be an array of strings', 'exclude not an array');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, repeat('x', 200), '{}')$$, '22001', 'context must be at most 127 bytes long', 'long context');
SELECT throws_ok($$SELECT train('h', 'hybrid', 'inter', '{"item_features": "no_such_features"}')$$, '42P01', NULL, 'unknown features table');
SELECT throws_ok($$SELECT train('h', 'hybrid', 'inter', '{"item_features": "no_feature_column"}')$$, '42703',
                 'item_features has no column "feature"', 'features without a feature column');
SELECT throws_ok($$SELECT train('h', 'hybrid', 'inter', '{"item_features": "feats_nan"}')$$, '22000',
                 'item_features weight must be finite, not "NaN"', 'NaN feature weight');
SELECT throws_ok($$SELECT train('h', 'hybrid', 'inter', '{"item_features": "feats", "exclude_features": ["year"]}')$$, '22023',
                 'feature set "year" does not occur in the features', 'unknown feature set');
SELECT throws_ok($$SELECT train('x', 'als', 'inter', '{"exclude_features": ["genre"]}')$$, '22023',
                 'feature set "genre" is not used by algorithm als', 'feature set of another algorithm');
SELECT throws_ok($$SELECT train('x', 'als', 'inter', '{"exclude_features": [1]}')$$, '22023',
                 'option "exclude_features" must be an array of strings', 'exclude_features elements');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"core": "svd"}')$$, '22023', 'option "core" must be one of warp, als, not "svd"', 'hybrid core');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"loss": "bpr"}')$$, '22023',
                 'option "loss" does not apply to the hybrid''s als core', 'an SGD option with the ALS core (the default)');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"core": "warp", "alpha": 2}')$$, '22023',
                 'option "alpha" does not apply to the hybrid''s warp core', 'an ALS option with the WARP core');
SELECT throws_ok($$SELECT hybrid_fit(1, 1, 1, NULL, '{"core": "als", "feature_regularization": 0}')$$, '22023', NULL,
                 'feature regularization 0');
SELECT lives_ok($$SELECT train('h', 'hybrid', 'inter', '{"factors": 4, "iterations": 2, "item_features": "feats", "exclude_features": ["genre"]}')$$,
                'a hybrid without its only feature set');

-- differential privacy: options outside the documented range are errors
SELECT throws_ok($$SELECT dp_popularity_fit(1, 1, 1, '{}')$$, '22023', 'option "epsilon" is required', 'epsilon required');
SELECT throws_ok($$SELECT dp_popularity_fit(1, 1, 1, '{"epsilon": 0}')$$, '22023', 'option "epsilon" must be greater than 0', 'epsilon 0');
SELECT throws_ok($$SELECT dp_popularity_fit(1, 1, 1, '{"epsilon": -1}')$$, '22023', 'option "epsilon" must be between 0 and 1000, not -1', 'negative epsilon');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 5000}')$$, '22023', 'option "epsilon" must be between 0 and 1000, not 5000', 'epsilon too large');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": "lots"}')$$, '22023', 'option "epsilon" must be a number or "infinity", not "lots"', 'epsilon text');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 1, "delta": 0}')$$, '22023', 'option "delta" must be greater than 0', 'delta 0');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 1, "delta": 0.5}')$$, '22023', 'option "delta" must be between 0 and 0.1, not 0.5', 'delta too large');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 1, "contributions": 0}')$$, '22023', NULL, 'contributions 0');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 1, "clip": 0}')$$, '22023', NULL, 'clip 0');
SELECT throws_ok($$SELECT dp_als_fit(1, 1, 1, '{"epsilon": 1, "noise": 3}')$$, '22023', 'unknown option "noise"', 'unknown dp option');
SELECT throws_ok($$SELECT dp_popularity_fit(1, 1, 1, '{"epsilon": 1, "mechanism": "exponential"}')$$, '22023',
                 'option "mechanism" must be one of laplace, gaussian, not "exponential"', 'unknown mechanism');
SELECT throws_ok($$SELECT train('p', 'dp_popularity', 'inter', '{"epsilon": 1, "catalog": "no_such_catalog"}')$$, '42P01', NULL, 'unknown catalog');
SELECT throws_ok($$SELECT train('p', 'dp_popularity', 'inter', '{"epsilon": 0.01}')$$, '22000',
                 'no item passed the release threshold 15425.9', 'nothing released');
SELECT throws_ok($$SELECT train('p', 'dp_popularity', 'inter', '{"epsilon": 1, "exclude_features": ["weight"]}')$$, '22023',
                 'feature set "weight" is not used by algorithm dp_popularity', 'dp_popularity uses no weights');

-- editorial
CREATE TABLE bad_list AS SELECT 1::bigint AS item_id, 0 AS position;
SELECT throws_ok($$SELECT train('e', 'editorial', 'bad_list')$$, '22023', 'editorial position must be at least 1, not 0', 'position 0');
SELECT throws_ok($$SELECT train('e', 'editorial', 'SELECT 1::bigint AS item_id, NULL::int AS position')$$, '22023',
                 'source "SELECT 1::bigint AS item_id, NULL::int AS position" has no rows with non-NULL item_id and position', 'empty list');
SELECT lives_ok($$SELECT train('e', 'editorial', 'SELECT 1::bigint AS item_id, 1 AS position')$$, 'a one-item list');
SELECT throws_ok($$SELECT * FROM recommend('e', 1, 2)$$, '22023', 'k must be between 1 and the item count 1 of model "e", not 2', 'k above the list');
SELECT throws_ok($$SELECT * FROM similar_items('e', 1, 1)$$, '0A000', 'model "e" is an editorial model and has no item similarities', 'no similarities');
SELECT throws_ok($$SELECT * FROM item_embeddings('e')$$, '0A000', 'model "e" has no embeddings', 'no embeddings');

-- explain
SELECT throws_ok($$SELECT * FROM explain(NULL, 1, 1)$$, '22004', 'model_name must not be NULL', 'explain NULL model');
SELECT throws_ok($$SELECT * FROM explain('als', 1, 1, 0)$$, '22023', 'k must be at least 1, not 0', 'explain k');
SELECT throws_ok($$SELECT * FROM explain('nope', 1, 1)$$, '42704', 'model "nope" does not exist', 'explain unknown model');
SELECT is((SELECT count(*) FROM explain('als', NULL, 1)), 0::bigint, 'explain NULL user: no rows');

-- privacy_report
SELECT throws_ok($$SELECT * FROM privacy_report('inter', NULL)$$, '22004', NULL, 'report NULL test');
SELECT throws_ok($$SELECT * FROM privacy_report('inter', 'inter', '{-1}')$$, '22023', NULL, 'report negative epsilon');
SELECT throws_ok($$SELECT * FROM privacy_report('inter', 'inter', options => '{"ablations": [["genre"]]}')$$, '22023',
                 'option "ablations" needs option "hybrid"', 'report ablations without hybrid');
SELECT throws_ok($$SELECT * FROM privacy_report('inter', 'inter', options => '{"svd": {}}')$$, '22023', 'unknown option "svd"', 'report option');

-- a private model never starts from a non-private model's factors; classifiers name their features
SELECT is(train('arms_warm_base', 'als', 'inter', '{"factors": 4, "iterations": 1}'), 1, 'a model to start from');
SELECT throws_ok($$SELECT train('arms_warm_dp', 'dp_als', 'inter', '{"factors": 4, "epsilon": 1, "warm_start": "arms_warm_base"}')$$,
                 '22023', 'option "warm_start" is not supported by dp_als models', 'dp_als refuses warm_start');
SELECT * FROM finish();
ROLLBACK;
