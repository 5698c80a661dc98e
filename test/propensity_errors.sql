-- Errors of logistic and uplift training, scoring, calibration and read-outs: SQLSTATEs and messages.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(82);

CREATE TABLE people AS
SELECT g AS id, (g % 7 + (g % 3) * 0.5)::float8 AS score, (g % 5)::int AS visits, g % 2 = 0 AS member,
       ARRAY[(g % 11)::float8, (g % 13)::float8] AS vec, (ARRAY['a', 'b', 'c'])[g % 3 + 1] AS region,
       ((g * 7919) % 10 < 4) AS bought, (g % 2 = 1) AS treated, 1.0::float8 AS w
FROM generate_series(1, 300) g;
SELECT lives_ok($$SELECT train_classifier('clf', 'people', 'bought', '{score,visits,member,vec,region}')$$, 'train a classifier');
SELECT lives_ok($$SELECT train_uplift('upl', 'people', 'bought', 'treated', '{score,region}')$$, 'train an uplift model');
SELECT lives_ok($$SELECT train('pop', 'popularity', 'SELECT id AS user_id, visits AS item_id, 1 AS weight FROM people')$$, 'train a recommender');

-- columns
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'nope', '{score}')$$, '42703', 'source "people" has no column "nope"', 'unknown label');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score,nope}')$$, '42703', 'source "people" has no column "nope"', 'unknown feature');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"weight": "nope"}')$$, '42703', NULL, 'unknown weight column');
SELECT throws_ok($$SELECT train_uplift('x', 'people', 'bought', 'nope', '{score}')$$, '42703', NULL, 'unknown treatment column');
SELECT throws_ok($$SELECT train_classifier('x', 'no_such_table', 'bought', '{score}')$$, '42P01', NULL, 'unknown source');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score,score}')$$, '22023', 'column "score" is used twice', 'a feature twice');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{bought}')$$, '22023', 'column "bought" is used twice', 'the label as a feature');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"exclude_features": ["score"]}')$$, '22023',
                 'option "exclude_features" does not apply to algorithm logistic', 'exclude_features is for recommenders');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, point(1, 2) AS p FROM people', 'bought', '{p}')$$, '42804', NULL, 'a feature of an unusable type');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT region AS y, score FROM people', 'y', '{score}')$$, '42804', NULL, 'a text label');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"categorical": ["visits"]}')$$, '22023',
                 'categorical column "visits" is not one of the features', 'categorical column not a feature');

-- labels
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT true AS y, score FROM people', 'y', '{score}')$$, '22000',
                 'label "y" is constant: all 300 training rows are positive', 'a constant label');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT visits AS y, score FROM people', 'y', '{score}')$$, '22000',
                 'label "y" must be 0 or 1 (or a boolean)', 'a label that is not 0/1');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT 1 AS y, score FROM people WHERE false', 'y', '{score}')$$, '22023',
                 'source "SELECT 1 AS y, score FROM people WHERE false" has no rows', 'no rows');

-- NULLs (policy: an error, or the rows left out with skip_nulls)
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, CASE WHEN id = 5 THEN NULL ELSE score END AS s FROM people', 'bought', '{s}')$$,
                 '22004', 'column "s" is NULL in 1 of the 300 rows of source "SELECT bought, CASE WHEN id = 5 THEN NULL ELSE score END AS s FROM people"',
                 'a NULL feature');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT NULLIF(bought, id = 9) AS y, score FROM people', 'y', '{score}')$$,
                 '22004', NULL, 'a NULL label');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, CASE WHEN id = 5 THEN ARRAY[1, NULL]::float8[] ELSE vec END AS v FROM people', 'bought', '{v}')$$,
                 '22004', NULL, 'a NULL array element');
SELECT lives_ok($$SELECT train_classifier('skip', 'SELECT bought, NULLIF(score, 3) AS s FROM people', 'bought', '{s}', '{"skip_nulls": true}')$$,
                'skip_nulls');
SELECT is((SELECT (model_info(model_export(name, version)) -> 'classifier' ->> 'null_rows')::bigint FROM models WHERE name = 'skip'),
          (SELECT count(*) FROM people WHERE score = 3), 'skip_nulls leaves rows with a NULL out and counts them');

-- non-finite values
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, CASE WHEN id = 5 THEN ''NaN'' ELSE score END AS s FROM people', 'bought', '{s}')$$,
                 '22000', NULL, 'a NaN feature');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, CASE WHEN id = 5 THEN ARRAY[1, ''Infinity'']::float8[] ELSE vec END AS v FROM people', 'bought', '{v}')$$,
                 '22000', 'feature "v" must be finite, not "Infinity"', 'an infinite array element');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, score, CASE WHEN id = 5 THEN ''NaN''::float8 ELSE 1 END AS w FROM people', 'bought', '{score}', '{"weight": "w"}')$$,
                 '22000', 'weight column "w" must be finite and not negative', 'a NaN weight');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, score, -1::float8 AS w FROM people', 'bought', '{score}', '{"weight": "w"}')$$,
                 '22000', NULL, 'a negative weight');

-- arrays of varying length
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, CASE WHEN id = 5 THEN ARRAY[1.0] ELSE vec END AS v FROM people', 'bought', '{v}')$$,
                 '2202E', 'feature "v" must have the same number of elements in every row, not 1 to 2', 'arrays of varying length');

-- estimates that do not exist
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT score > 4 AS y, score FROM people', 'y', '{score}')$$, '22000',
                 'label "y" is perfectly separated by the features', 'perfect separation');
SELECT lives_ok($$SELECT train_classifier('x', 'SELECT score > 4 AS y, score FROM people', 'y', '{score}', '{"l2": 1}')$$,
                'perfect separation with an L2 penalty');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought OR region = ''c'' AS y, region FROM people', 'y', '{region}')$$, '22000',
                 'level "c" of feature "region" has only positive labels (100 training rows)', 'quasi-separation by a level');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT CASE WHEN visits > 2 THEN true WHEN visits < 2 THEN false ELSE bought END AS y,
                                                     visits, score FROM people', 'y', '{visits,score}')$$, '22000', NULL,
                 'quasi-separation by a numeric feature');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, score, 2 * score AS twice FROM people', 'bought', '{score,twice}')$$, '22000',
                 'design column "twice" is collinear with the columns before it', 'collinear features');
SELECT throws_ok($$SELECT train_classifier('x', 'SELECT bought, 1.5 AS c FROM people', 'bought', '{c}')$$, '22000',
                 'feature "c" is constant: every training row has the value 1.5', 'a constant feature');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score,region}', '{"max_iterations": 1}')$$, '22000',
                 'the fit did not converge in 1 iterations', 'no convergence');

-- options
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"l1": 1}')$$, '22023', 'unknown option "l1"', 'unknown option');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"l2": -1}')$$, '22023', NULL, 'negative l2');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"class_weight": "even"}')$$, '22023', NULL, 'bad class_weight');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"class_weight": {"positive": 0}}')$$, '22023', 'class weights must be positive', 'zero class weight');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{score}', '{"treatment": "treated"}')$$, '22023', 'option "treatment" belongs to uplift models', 'treatment in a classifier');
SELECT throws_ok($$SELECT train('x', 'logistic', 'people', '{"features": ["score"]}')$$, '22023', 'option "label" is required', 'no label');
SELECT throws_ok($$SELECT train_classifier('x', 'people', NULL, '{score}')$$, '22004', NULL, 'NULL label');
SELECT throws_ok($$SELECT train_classifier('x', 'people', 'bought', '{}', '{"intercept": false}')$$, '22023', 'the model has no design columns', 'nothing to fit');
SELECT throws_ok($$SELECT train_uplift('x', 'SELECT bought, true AS t, score FROM people', 'bought', 't', '{score}')$$, '22023',
                 'source "SELECT bought, true AS t, score FROM people" has no rows in the control arm', 'an empty arm');

-- scoring
SELECT throws_ok($$SELECT predict('nope', 1)$$, '42704', 'model "nope" does not exist', 'unknown model');
SELECT throws_ok($$SELECT predict('pop', 1)$$, '0A000', 'model "pop" is a popularity model, not a classifier', 'a recommender passed to predict');
SELECT throws_ok($$SELECT predict('upl', 1.0, 'a')$$, '0A000', 'model "upl" is an uplift model, not a classifier', 'an uplift model passed to predict');
SELECT throws_ok($$SELECT uplift_score('clf', 1.0, 1, true, '{1,2}'::float8[], 'a')$$, '0A000', 'model "clf" is a logistic model, not an uplift model', 'a classifier passed to uplift_score');
SELECT throws_ok($$SELECT * FROM recommend('clf', 1)$$, '0A000', 'model "clf" is a logistic model, not a recommender', 'a classifier passed to recommend');
SELECT throws_ok($$SELECT * FROM explain('clf', 1, 1)$$, '0A000', 'model "clf" is a logistic model, not a recommender', 'a classifier passed to explain');
SELECT throws_ok($$SELECT predict('clf', 1.0, 2)$$, '22023', 'model "clf" has 5 features, not 2', 'too few features');
SELECT throws_ok($$SELECT predict('clf', 'x'::text, 1, true, '{1,2}'::float8[], 'a')$$, '42804', 'feature "score" must be a number or a boolean, not text', 'a text for a number');
SELECT throws_ok($$SELECT predict('clf', 1.0, 1, true, '{1,2,3}'::float8[], 'a')$$, '2202E', 'feature "vec" must have 2 elements, not 3', 'an array of the wrong length');
SELECT throws_ok($$SELECT predict('clf', 'NaN'::float8, 1, true, '{1,2}'::float8[], 'a')$$, '22000', 'feature "score" must be finite, not "NaN"', 'a NaN at scoring');
SELECT throws_ok($$SELECT predict('clf', VARIADIC ARRAY[1.0, 2.0])$$, '0A000', NULL, 'a VARIADIC array');
SELECT throws_ok($$SELECT predict('clf', p) FROM (SELECT 1.0 AS score) p$$, '42703', 'row has no column "visits", a feature of model "clf"', 'a row without a feature');
SELECT throws_ok($$SELECT * FROM predictions('clf', 'people', 'nope')$$, '42703', 'source has no column "nope"', 'unknown id column');
SELECT throws_ok($$SELECT * FROM predictions('clf', 'SELECT id, score FROM people', 'id')$$, '42703', NULL, 'a source without the features');
SELECT throws_ok($$SELECT * FROM coefficients('pop')$$, '0A000', NULL, 'coefficients of a recommender');
SELECT throws_ok($$SELECT * FROM coefficients('clf', 1.5)$$, '22023', NULL, 'confidence out of range');

-- calibration
SELECT throws_ok($$SELECT calibrate('clf', 'people', 'beta')$$, '22023', 'unknown calibration method "beta"', 'unknown method');
SELECT throws_ok($$SELECT calibrate('pop', 'people')$$, '0A000', 'model "pop" is a popularity model, not a logistic model', 'calibrate a recommender');
SELECT throws_ok($$SELECT calibrate('nope', 'people')$$, '42704', 'model "nope" does not exist', 'calibrate an unknown model');
SELECT throws_ok($$SELECT calibrate('clf', 'SELECT * FROM people WHERE bought')$$, '22000', NULL, 'calibrate on one class');

-- read-outs
SELECT throws_ok($$SELECT uplift_sample(true, true, 'NaN')$$, '22000', 'uplift score must be finite, not NaN', 'a NaN uplift score');
SELECT throws_ok($$SELECT uplift_summary(uplift_sample(bought, true, score)) FROM people$$, '22000', NULL, 'one arm only');
SELECT throws_ok($$SELECT uplift_summary(uplift_sample(bought, treated, score), 1.0) FROM people$$, '22023', 'k must be between 0 and 1 (exclusive), not 1', 'k out of range');
SELECT throws_ok($$SELECT uplift_summary(uplift_sample(bought, treated, score), 0.3, 'first') FROM people$$, '22023', 'unknown strategy "first"', 'unknown strategy');
SELECT throws_ok($$SELECT * FROM uplift_by_percentile((SELECT uplift_sample(bought, treated, score) FROM people), 0)$$, '22023', NULL, 'zero bins');
SELECT throws_ok($$SELECT * FROM uplift_curve('\x0102'::bytea)$$, '22P03', 'invalid uplift sample', 'not a sample');

-- NULL arguments that matter
SELECT throws_ok($$SELECT predict(NULL, 1.0, 1, true, '{1,2}'::float8[], 'a')$$, '22004', 'model_name must not be NULL', 'predict: NULL model');
SELECT throws_ok($$SELECT uplift_score(NULL, 1.0, 'a')$$, '22004', NULL, 'uplift_score: NULL model');
SELECT throws_ok($$SELECT * FROM predictions('clf', NULL, 'id')$$, '22004', NULL, 'predictions: NULL source');
SELECT throws_ok($$SELECT * FROM uplift_scores('upl', 'people', NULL)$$, '22004', NULL, 'uplift_scores: NULL id column');
SELECT throws_ok($$SELECT classifier_fit('logistic', NULL, '{}')$$, '22004', NULL, 'classifier_fit: NULL source');
SELECT throws_ok($$SELECT calibration_fit(NULL, 'people', 'platt')$$, '22004', NULL, 'calibration_fit: NULL model');
SELECT throws_ok($$SELECT calibrate('clf', 'people', NULL)$$, '22004', NULL, 'calibrate: NULL method');
SELECT throws_ok($$SELECT train_uplift('x', 'people', 'bought', NULL, '{score}')$$, '22004', NULL, 'train_uplift: NULL treatment');
SELECT throws_ok($$SELECT log_predictions('clf', 'people', NULL)$$, '22004', NULL, 'log_predictions: NULL id column');

-- a stored value whose classifier section is damaged (its magic number) is refused on input
SELECT throws_ok($$SELECT replace(model_export('clf', 1)::text, '314c4350', '00000000')::model$$,
                 'XX001', 'invalid personalize.model value: classifier header', 'a damaged classifier section');

-- the aggregate itself
-- the pass's all-float8 path (a model on float8 columns only) checks finiteness too
SELECT lives_ok($$SELECT train_classifier('clf_f8', 'SELECT bought, score, (id % 4)::float8 AS x FROM people', 'bought', '{score,x}')$$, 'a classifier on float8 columns');
SELECT throws_ok($$SELECT logistic_pass((SELECT logistic_spec(model_export('clf_f8', 1))), true, 1.0::float8, 1.0::float8, 'NaN'::float8)$$,
                 '22000', 'feature "x" must be finite, not "NaN"', 'a NaN in a pass over float8 features names its feature');
SELECT throws_ok($$SELECT logistic_pass(CASE WHEN score > 1 THEN '\x00'::bytea END, 1, 1, score) FROM people$$, '22023', NULL, 'a spec that varies');

SELECT * FROM finish();
ROLLBACK;
