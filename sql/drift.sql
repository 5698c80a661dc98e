-- Drift (model_drift, psi, ks_statistic) against numpy/scipy values from
-- test/reference/ref_drift.py, to 1e-9: generated interactions, a popularity and
-- an ALS model trained on the rows up to the window, logged propensity scores.
SET search_path = personalize, public;
SET client_min_messages = warning;

CREATE TEMP TABLE drift_raw (user_id bigint, item_id bigint, weight real, t bigint);
\copy drift_raw FROM 'test/reference/drift_interactions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE drift_events AS SELECT user_id, item_id, weight, to_timestamp(t) AS occurred_at FROM drift_raw;
-- the window is the 3 days up to 1780000000 (unix seconds)
SELECT train('drift_pop', 'popularity', 'SELECT * FROM drift_events WHERE occurred_at <= to_timestamp(1779740800)') AS version;
SELECT train('drift_als', 'als', 'SELECT * FROM drift_events WHERE occurred_at <= to_timestamp(1779740800)',
             '{"factors": 2, "iterations": 1}') AS version;
CREATE TEMP TABLE drift_scores (score float8, t bigint);
\copy drift_scores FROM 'test/reference/drift_scores.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
INSERT INTO prediction_log (model, score, logged_at) SELECT 'drift_pop', score, to_timestamp(t) FROM drift_scores;

CREATE TEMP TABLE drift_expected (metric text, value float8);
\copy drift_expected FROM 'test/reference/drift_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE drift_got AS
SELECT 'popularity' AS model, d.* FROM model_drift('drift_pop', 'drift_events', '3 days', jsonb_build_object('as_of', to_timestamp(1780000000))) d
UNION ALL
SELECT 'als', d.* FROM model_drift('drift_als', 'drift_events', '3 days', jsonb_build_object('as_of', to_timestamp(1780000000))) d;

-- every metric of the popularity model (unknown users: the ALS model, which keeps users)
SELECT e.metric, abs(g.value - e.value) <= 1e-9 * greatest(1, abs(e.value)) AS within_1e_9, g.drifted
FROM drift_expected e
LEFT JOIN drift_got g ON g.metric = e.metric AND g.model = CASE e.metric WHEN 'unknown_users' THEN 'als' ELSE 'popularity' END
ORDER BY e.metric;
-- the two models were trained on the same rows: the same item statistics
SELECT p.metric, p.value = a.value AS same
FROM drift_got p JOIN drift_got a ON a.metric = p.metric AND a.model = 'als'
WHERE p.model = 'popularity' AND p.metric IN ('item_popularity_psi', 'item_popularity_ks', 'unknown_items', 'volume_ratio')
ORDER BY 1;
SELECT metric, value IS NULL AS no_value, drifted IS NULL AS not_judged, detail FROM drift_got WHERE model = 'popularity' AND metric = 'unknown_users';
SELECT count(*) AS als_score_rows FROM drift_got WHERE model = 'als' AND metric = 'score_psi';
-- thresholds are options; a window with nothing in it has no item statistics
SELECT metric, threshold, drifted FROM model_drift('drift_pop', 'drift_events', '3 days',
	jsonb_build_object('as_of', to_timestamp(1780000000), 'item_psi', 5, 'volume', 1.5)) WHERE metric IN ('item_popularity_psi', 'volume_ratio')
ORDER BY 1;
SELECT metric, value, drifted FROM model_drift('drift_pop', 'drift_events', '1 hour', jsonb_build_object('as_of', to_timestamp(1700000000)))
ORDER BY 1;

-- psi() and ks_statistic() on their own
CREATE TEMP TABLE drift_histograms (id int, expected float8[], actual float8[], psi float8, ks float8);
\copy drift_histograms FROM 'test/reference/drift_histograms.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT count(*) AS cases,
       bool_and(abs(psi(expected, actual) - psi) <= 1e-9 * greatest(1, abs(psi))) AS psi_within_1e_9,
       bool_and(abs(ks_statistic(expected, actual) - ks) <= 1e-9 * greatest(1, abs(ks))) AS ks_within_1e_9,
       bool_or(psi = 0) AS has_identical_shares
FROM drift_histograms;
SELECT psi('{0,0}', '{1,2}') AS empty_expected, ks_statistic('{1,2}', '{0,0}') AS empty_actual, psi('{}', '{}') AS no_bins;
SELECT psi('{1,2}', '{1}');
SELECT psi('{1,NULL}', '{1,2}');
SELECT ks_statistic('{1,-2}', '{1,2}');
SELECT psi('{1,NaN}', '{1,2}');
SELECT psi('{{1,2}}', '{{1,2}}');

DELETE FROM prediction_log WHERE model = 'drift_pop';
DROP TABLE drift_events;
SELECT drop_model('drift_pop'), drop_model('drift_als');
