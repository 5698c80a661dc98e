-- Errors of the operations functions (checks, drift, refresh, scheduling, progress, warm
-- start): SQLSTATEs and messages.
BEGIN;
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(48);

CREATE TABLE e (user_id bigint, item_id bigint, weight real, occurred_at timestamptz);
INSERT INTO e VALUES (1, 1, 1, now());
SELECT lives_ok($$SELECT train('pop', 'popularity', 'e')$$, 'a popularity model');

-- check_interactions
SELECT throws_ok($$SELECT * FROM check_interactions(NULL)$$, '22004', 'source and options must not be NULL', 'NULL source');
SELECT throws_ok($$SELECT * FROM check_interactions('e', NULL)$$, '22004', 'source and options must not be NULL', 'NULL options');
SELECT throws_ok($$SELECT * FROM check_interactions('nope')$$, '42P01', NULL, 'unknown relation');
SELECT throws_ok($$SELECT * FROM check_interactions('SELECT 1 AS x')$$, '42703', 'source must have columns user_id and item_id', 'no id columns');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '[]')$$, '22023', 'options must be a jsonb object', 'options not an object');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"bogus": 1}')$$, '22023', 'unknown option "bogus"', 'unknown option');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"skip": ["nope"]}')$$, '22023', 'unknown check "nope"', 'unknown check');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"severity": {"rows": "fatal"}}')$$, '22023',
                 'severity must be "error" or "warning"', 'unknown severity');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"thresholds": {"rows": -1}}')$$, '22023',
                 'thresholds must be non-negative numbers (freshness: an interval)', 'negative threshold');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"thresholds": {"freshness": 3}}')$$, '22023',
                 'thresholds must be non-negative numbers (freshness: an interval)', 'freshness not an interval');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"window": "-1 day"}')$$, '22023', 'window must be positive, not -1 days', 'negative window');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"trailing_windows": 0}')$$, '22023',
                 'trailing_windows must be between 1 and 365, not 0', 'no trailing window');
SELECT throws_ok($$SELECT * FROM check_interactions('e', '{"as_of": "infinity"}')$$, '22023', 'as_of must be a finite timestamp', 'infinite as_of');
SELECT throws_ok($$SELECT interaction_profile(1, 1, 1, now(), NULL)$$, '22004', 'settings must not be NULL', 'profile without settings');

-- model_drift, psi, ks_statistic
SELECT throws_ok($$SELECT * FROM model_drift('nope', 'e', '1 day')$$, '42704', 'model "nope" does not exist', 'unknown model');
SELECT throws_ok($$SELECT * FROM model_drift(NULL, 'e', '1 day')$$, '22004',
                 'model_name, source, recent_window and options must not be NULL', 'NULL argument');
SELECT throws_ok($$SELECT * FROM model_drift('pop', 'e', '-1 day')$$, '22023', 'recent_window must be positive', 'negative window');
SELECT throws_ok($$SELECT * FROM model_drift('pop', 'SELECT user_id, item_id FROM e', '1 day')$$, '42703',
                 'source has no column "occurred_at"', 'no time column');
SELECT throws_ok($$SELECT * FROM model_drift('pop', 'e', '1 day', '{"bogus": 1}')$$, '22023', 'unknown option "bogus"', 'unknown option');
SELECT throws_ok($$SELECT * FROM model_drift('pop', 'e', '1 day', '{"as_of": 5}')$$, '22023', 'option "as_of" must be a timestamp', 'as_of a number');
SELECT throws_ok($$SELECT * FROM model_drift('pop', 'e', '1 day', '{"item_psi": -1}')$$, '22023', NULL, 'negative threshold');
SELECT throws_ok($$SELECT psi('{1,2}', '{1}')$$, '2202E', 'expected and actual must have the same length, not 2 and 1', 'histograms of two lengths');
SELECT throws_ok($$SELECT ks_statistic('{1,-2}', '{1,2}')$$, '22000', 'expected must hold finite non-negative counts, not -2', 'negative count');

-- register_refresh, refresh, rollback
SELECT throws_ok($$SELECT register_refresh(NULL, 'e', 'als')$$, '22004', NULL, 'NULL model name');
SELECT throws_ok($$SELECT register_refresh('', 'e', 'als')$$, '22023', 'model name must not be empty', 'empty model name');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'svd')$$, '22023', 'unknown algorithm "svd"', 'unknown algorithm');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{"factor": 3}')$$, '22023', 'unknown option "factor"',
                 'training options are checked when registering');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{"activate": true}')$$, '22023',
                 'options must be a jsonb object of training options (without activate or warm_start)', 'activate is refresh''s decision');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{}', '{"metric": "auc"}')$$, '22023',
                 'gate metric must be one of ndcg_at_k, precision_at_k, recall_at_k, map_at_k, hit_rate_at_k, mrr_at_k, not "auc"', 'unknown metric');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{}', '{"bogus": 1}')$$, '22023', 'unknown gate option "bogus"', 'unknown gate option');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{}', '{"k": 0}')$$, '22023', 'gate k must be an integer between 1 and 1000', 'k = 0');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{}', '{"holdout": "0"}')$$, '22023', 'gate holdout must be a positive interval', 'no holdout');
SELECT throws_ok($$SELECT register_refresh('r', 'e', 'als', '{}', '{"checks": {"bogus": 1}}')$$, '22023', 'unknown option "bogus"',
                 'check options are checked when registering');
SELECT throws_ok($$SELECT register_refresh('r', 'SELECT user_id, item_id FROM e', 'als')$$, '42703',
                 'source must have columns user_id, item_id, weight and occurred_at', 'a source without time');
SELECT throws_ok($$SELECT register_refresh('r', 'SELECT * FROM e', 'als')$$, '42P01',
                 'source must qualify its tables with their schema: refresh runs it with search_path pg_catalog, pg_temp', 'an unqualified query');
SELECT lives_ok($$SELECT register_refresh('r', 'SELECT * FROM public.e', 'als')$$, 'a qualified query');
SELECT throws_ok($$SELECT refresh('nope')$$, '42704', 'model "nope" has no registered refresh', 'refresh of an unregistered model');
SELECT throws_ok($$SELECT unregister_refresh('nope')$$, '42704', 'model "nope" has no registered refresh', 'unregister an unknown one');
SELECT throws_ok($$SELECT rollback('nope')$$, '42704', 'model "nope" does not exist', 'rollback of an unknown model');
SELECT throws_ok($$SELECT rollback('pop')$$, '55000', 'model "pop" has no earlier promoted version to roll back to', 'nothing to roll back to');

-- scheduling without a way to pg_cron (this database is not cron.database_name)
DROP EXTENSION IF EXISTS dblink CASCADE;
SELECT throws_ok($$SELECT schedule_refresh('nope', '* * * * *')$$, '42704', 'model "nope" has no registered refresh', 'schedule an unregistered model');
SELECT throws_ok($$SELECT schedule_refresh('r', '* * * * *')$$, '55000', NULL, 'without pg_cron here nor dblink, schedule_refresh says so');
SELECT throws_ok($$SELECT * FROM refresh_jobs$$, '55000', NULL, 'and so does refresh_jobs');

-- progress and warm start
SELECT throws_ok($$SELECT report_progress('bogus', 'training')$$, '22023', 'unknown progress operation "bogus"', 'unknown operation');
SELECT throws_ok($$SELECT report_progress('train', 'bogus')$$, '22023', 'unknown progress phase "bogus"', 'unknown phase');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '{"warm_start": 3}')$$, '22023', 'option "warm_start" must be the name of a model', 'warm_start not a name');
SELECT throws_ok($$SELECT als_fit(1, 1, 1, '{"warm_start": "pop"}')$$, '22023', 'warm_start model "pop" must be an ALS model with 64 factors',
                 'warm start from a model of another shape');

SELECT * FROM finish();
ROLLBACK;
