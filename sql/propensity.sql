-- Logistic regression, scoring and calibration against statsmodels and scikit-learn
-- (test/reference/ref_propensity.py). Errors: test/propensity_errors.sql.
SET search_path = public, personalize;
SET client_min_messages = warning;

CREATE TABLE customers (id bigint, y boolean, w float8, x_num float8, x_int int, x_flag boolean, x_vec float8[],
                        seg text, tier text);
\copy customers FROM 'test/reference/propensity_train.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')
CREATE TABLE holdout (LIKE customers);
\copy holdout FROM 'test/reference/propensity_holdout.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')
CREATE TEMP TABLE expected (config text, term text, coefficient float8, std_error float8, z float8, p_value float8,
                            ci_low float8, ci_high float8);
\copy expected FROM 'test/reference/propensity_coefficients.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected_scores (id bigint, log_odds float8, probability float8, platt float8, isotonic float8);
\copy expected_scores FROM 'test/reference/propensity_scores.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

-- relative closeness (with an absolute floor for values near 0)
CREATE FUNCTION pg_temp.close(a float8, b float8, rel float8) RETURNS bool LANGUAGE sql IMMUTABLE
AS $$ SELECT abs(a - b) <= rel * abs(b) + 1e-13 $$;

-- four configurations; five rows with a NULL label, weight or feature are left out
SELECT train_classifier('mle', 'customers', 'y', '{x_num,x_int,x_flag,x_vec,seg,tier}', '{"skip_nulls": true}') AS mle,
       train_classifier('weighted', 'customers', 'y', '{x_num,x_int,x_flag,x_vec,seg,tier}',
                        '{"skip_nulls": true, "weight": "w", "class_weight": {"positive": 2}}') AS weighted,
       train_classifier('l2', 'customers', 'y', '{x_num,x_int,x_flag,x_vec,seg,tier}',
                        '{"skip_nulls": true, "l2": 2, "standardize": true, "drop_first": false}') AS l2,
       train_classifier('balanced', 'customers', 'y', '{x_num,x_int,x_flag,x_vec,seg,tier}',
                        '{"skip_nulls": true, "class_weight": "balanced", "intercept": false}') AS balanced;
SELECT name, version, algorithm, rows, users, items, active,
       (model_info(model_export(name, version)) -> 'classifier') - 'iterations' - 'log_likelihood' AS classifier
FROM models WHERE algorithm = 'logistic' ORDER BY name;

-- every coefficient, standard error, z, p-value and interval of the reference
SELECT e.config, count(*) AS terms, count(c.term) AS matched,
       bool_and(pg_temp.close(c.coefficient, e.coefficient, 1e-8)) AS coefficients,
       bool_and(pg_temp.close(c.std_error, e.std_error, 1e-8)) AS std_errors,
       bool_and(pg_temp.close(c.z, e.z, 1e-8)) AS z,
       bool_and(pg_temp.close(c.p_value, e.p_value, 1e-6)) AS p_values,
       bool_and(pg_temp.close(c.ci_low, e.ci_low, 1e-8) AND pg_temp.close(c.ci_high, e.ci_high, 1e-8)) AS intervals
FROM expected e LEFT JOIN LATERAL (SELECT * FROM coefficients(e.config) x WHERE x.term = e.term) c ON true
GROUP BY e.config ORDER BY e.config;
-- and no term beyond them
SELECT m.name, (SELECT count(*) FROM coefficients(m.name)) = (SELECT count(*) FROM expected e WHERE e.config = m.name) AS same_terms
FROM models m WHERE m.algorithm = 'logistic' ORDER BY m.name;
SELECT term, feature, level FROM coefficients('mle') ORDER BY term COLLATE "C";
-- a stored version, by value
SELECT (SELECT array_agg(c ORDER BY c.term) FROM coefficients(model_export('mle', 1)) c) =
       (SELECT array_agg(c ORDER BY c.term) FROM coefficients('mle') c) AS by_value;
-- the text form round-trips (pg_dump), through the checks of the classifier section
SELECT (m::text::model)::text = m::text AS round_trip FROM model_export('l2', 1) m;
-- a 90% interval is narrower
SELECT bool_and(c90.ci_high - c90.ci_low < c95.ci_high - c95.ci_low) AS narrower
FROM coefficients('mle', 0.9) c90 JOIN coefficients('mle') c95 USING (term);

-- scores of the holdout rows, one with a level ("central") unseen in training: zeros
SELECT count(*) AS rows, count(*) FILTER (WHERE h.seg = 'central') AS unseen_level,
       bool_and(pg_temp.close(predict('mle', h.x_num, h.x_int, h.x_flag, h.x_vec, h.seg, h.tier), e.probability, 1e-9)) AS positional,
       bool_and(pg_temp.close(predict('mle', h), e.probability, 1e-9)) AS whole_row,
       bool_and(pg_temp.close(predict_log_odds('mle', h), e.log_odds, 1e-9)) AS log_odds
FROM holdout h JOIN expected_scores e USING (id);
SELECT count(*) AS rows, bool_and(pg_temp.close(p.probability, e.probability, 1e-9)) AS batch
FROM predictions('mle', 'holdout', 'id') p JOIN expected_scores e ON e.id = p.subject_id;
-- a query as the source, ids of any integer type
SELECT count(*) AS rows, bool_and(p.probability IS NOT NULL) AS scored
FROM predictions('mle', 'SELECT id::int AS id, x_num, x_int, x_flag, x_vec, seg, tier FROM holdout WHERE id <= 10', 'id') p;
-- numbers of other types, texts of other types
SELECT pg_temp.close(predict('mle', 10::int, 20::bigint, 1, '{0.5,-1}'::real[], 'north'::varchar, 'gold'::char(6)),
                     predict('mle', 10.0::float8, 20.0::numeric, true, '{0.5,-1}'::float8[], 'north', 'gold'), 1e-6) AS other_types;

-- NULL policy: a NULL feature (or array element) scores NULL
SELECT predict('mle', NULL::float8, 1, true, '{0,0}'::float8[], 'north', 'gold') AS null_numeric,
       predict('mle', 1.0, 1, true, '{0,NULL}'::float8[], 'north', 'gold') AS null_element,
       predict('mle', 1.0, 1, true, '{0,0}'::float8[], NULL::text, 'gold') AS null_level;

-- calibration on the holdout rows: a new active version, applied by predict
SELECT calibrate('mle', 'holdout', 'platt') AS platt_version;
SELECT version, active, options ->> 'calibration' AS calibration, options ->> 'calibrated_version' AS of_version,
       model_info(model_export(name, version)) -> 'classifier' ->> 'calibration' AS stored
FROM models WHERE name = 'mle' ORDER BY version;
SELECT bool_and(pg_temp.close(predict('mle', h), e.platt, 1e-7)) AS platt,
       bool_and(pg_temp.close(predict_log_odds('mle', h), e.log_odds, 1e-9)) AS log_odds_unchanged
FROM holdout h JOIN expected_scores e USING (id);
SELECT calibrate('mle', 'holdout', 'isotonic') AS isotonic_version;
SELECT bool_and(pg_temp.close(predict('mle', h), e.isotonic, 1e-9)) AS isotonic
FROM holdout h JOIN expected_scores e USING (id);
-- calibrating a calibrated version keeps the coefficients of the version it calibrated
SELECT (SELECT array_agg(c.coefficient ORDER BY c.term) FROM coefficients('mle') c) =
       (SELECT array_agg(c.coefficient ORDER BY c.term) FROM coefficients(model_export('mle', 1)) c)
       AS same_coefficients;
-- reliability before (the raw probabilities) and after (isotonic, in-sample): calibration error drops
WITH s AS (SELECT h.y, 1 / (1 + exp(-predict_log_odds('mle', h))) AS raw, predict('mle', h) AS calibrated FROM holdout h)
SELECT (classification_metrics(y, raw)).ece > (classification_metrics(y, calibrated)).ece AS ece_drops,
       (SELECT count(*) FROM reliability_bins((SELECT score_sample(y, calibrated) FROM s))) AS bins
FROM s;
-- the uncalibrated version serves again once activated
SELECT activate('mle', 1);
SELECT bool_and(pg_temp.close(predict('mle', h), e.probability, 1e-9)) AS uncalibrated
FROM holdout h JOIN expected_scores e USING (id);

-- fairness: scores flow into fairness_summary and the prediction log without glue
WITH rates AS (SELECT h.tier, avg((predict('mle', h) >= 0.5)::int) AS selection_rate FROM holdout h GROUP BY h.tier)
SELECT pg_temp.close(f.demographic_parity_difference, (SELECT max(selection_rate) - min(selection_rate) FROM rates), 1e-12)
       AS demographic_parity
FROM fairness_summary('SELECT h.tier, h.y, personalize.predict(''mle'', h) >= 0.5 AS targeted FROM holdout h',
                      'tier', 'y', 'targeted') f;
SELECT log_predictions('mle', 'holdout', 'id', '{tier,seg}', 'y', 0.5) AS logged;
SELECT count(*) AS rows, count(*) FILTER (WHERE l.prediction) = (SELECT count(*) FROM holdout h WHERE predict('mle', h) >= 0.5)
       AS targeted, bool_and(l.attributes ->> 'tier' = h.tier AND l.label = h.y AND l.score = predict('mle', h)) AS rows_match
FROM prediction_log l JOIN holdout h ON h.id = l.subject_id WHERE l.model = 'mle';
SELECT attribute, count(*) AS groups FROM fairness_daily_groups WHERE model = 'mle' GROUP BY attribute ORDER BY attribute;

-- the registry keeps recommenders and classifiers side by side; erasure rewrites recommenders only
SELECT train('shop_knn', 'itemknn', 'SELECT id AS user_id, x_int AS item_id, 1 AS weight FROM customers') AS shop_knn;
SELECT (SELECT array_agg(name ORDER BY name) FROM models WHERE stale) AS stale_before;
SELECT forget_in_models(42) AS rewritten;
SELECT array_agg(name ORDER BY name) AS stale_after FROM models WHERE stale;

DROP TABLE customers, holdout;
