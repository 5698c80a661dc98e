-- Uplift: a T-learner against statsmodels, and the read-outs against a numpy implementation of
-- scikit-uplift's definitions (test/reference/ref_uplift.py). Errors: test/propensity_errors.sql.
SET search_path = public, personalize;
SET client_min_messages = warning;

CREATE TABLE experiment (id bigint, treatment boolean, outcome boolean, x1 float8, x2 int, seg text);
\copy experiment FROM 'test/reference/uplift_data.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE ref_scores (id bigint, p_treated float8, p_control float8, uplift float8);
\copy ref_scores FROM 'test/reference/uplift_scores.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_metrics (source text, strategy text, k float8, n bigint, treated bigint, control bigint,
                               auuc float8, qini_coefficient float8, uplift_at_k float8);
\copy ref_metrics FROM 'test/reference/uplift_metrics.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_curves (source text, kind text, n bigint, value float8, random float8);
\copy ref_curves FROM 'test/reference/uplift_curves.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_bins (source text, strategy text, bin int, n_treated bigint, n_control bigint, rate_treated float8,
                            rate_control float8, uplift float8, uplift_low float8, uplift_high float8, p_value float8);
\copy ref_bins FROM 'test/reference/uplift_bins.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')

CREATE FUNCTION pg_temp.close(a float8, b float8, rel float8) RETURNS bool LANGUAGE sql IMMUTABLE
AS $$ SELECT (a IS NULL AND b IS NULL) OR abs(a - b) <= rel * abs(b) + 1e-13 $$;

-- the scores the read-outs are checked on: the reference T-learner's, and the same rounded to
-- a grid of 0.25 so that runs of equal scores straddle the cuts (the order rule for ties)
CREATE TEMP TABLE scored AS
SELECT e.*, s.uplift AS model, round(s.uplift * 4) / 4 AS ties FROM experiment e JOIN ref_scores s USING (id);

-- T-learner: one logistic regression per arm
SELECT train_uplift('tl', 'experiment', 'outcome', 'treatment', '{x1,x2,seg}') AS version;
SELECT name, algorithm, rows, (model_info(model_export(name, version)) -> 'control' ->> 'rows')::int AS control_rows,
       (model_info(model_export(name, version)) -> 'treated' ->> 'rows')::int AS treated_rows
FROM models WHERE name = 'tl';
SELECT count(*) AS rows,
       bool_and(pg_temp.close(uplift_score('tl', e.x1, e.x2, e.seg), s.uplift, 1e-8)) AS positional,
       bool_and(pg_temp.close(uplift_score('tl', e), s.uplift, 1e-8)) AS whole_row
FROM experiment e JOIN ref_scores s USING (id);
SELECT count(*) AS rows, bool_and(pg_temp.close(u.p_treated, s.p_treated, 1e-9) AND pg_temp.close(u.p_control, s.p_control, 1e-9)
                                  AND pg_temp.close(u.uplift, s.uplift, 1e-8)) AS batch
FROM uplift_scores('tl', 'experiment', 'id') u JOIN ref_scores s ON s.id = u.subject_id;
SELECT arm, count(*) AS terms FROM coefficients('tl') GROUP BY arm ORDER BY arm;

-- read-outs on the reference scores and on the rounded ones
CREATE TEMP TABLE samples AS
SELECT 'model' AS source, uplift_sample(outcome, treatment, model) AS s FROM scored
UNION ALL SELECT 'ties', uplift_sample(outcome, treatment, ties) FROM scored;
SELECT r.source, r.strategy, r.k, s.n = r.n AND s.treated = r.treated AND s.control = r.control AS counts,
       pg_temp.close(s.auuc, r.auuc, 1e-9) AS auuc, pg_temp.close(s.qini_coefficient, r.qini_coefficient, 1e-9) AS qini,
       pg_temp.close(s.uplift_at_k, r.uplift_at_k, 1e-9) AS uplift_at_k
FROM ref_metrics r JOIN samples USING (source), LATERAL uplift_summary(samples.s, r.k, r.strategy) s
ORDER BY r.source, r.strategy, r.k;
-- the model's own scores give the same figures
SELECT pg_temp.close((uplift_summary(uplift_sample(e.outcome, e.treatment, uplift_score('tl', e)))).qini_coefficient,
                     (SELECT qini_coefficient FROM ref_metrics WHERE source = 'model' AND k = 0.3 AND strategy = 'overall'), 1e-9)
       AS qini_of_the_model
FROM experiment e;
CREATE TEMP TABLE curves AS
SELECT source, 'uplift' AS kind, c.* FROM samples, uplift_curve(s) c
UNION ALL SELECT source, 'qini', c.* FROM samples, qini_curve(s) c;
SELECT r.source, r.kind, count(*) AS points, count(c.n) AS matched, bool_and(pg_temp.close(c.value, r.value, 1e-9)) AS value,
       bool_and(pg_temp.close(c.random, r.random, 1e-9)) AS random
FROM ref_curves r LEFT JOIN curves c USING (source, kind, n)
GROUP BY r.source, r.kind ORDER BY r.source, r.kind;
SELECT source, kind, count(*) AS points FROM curves GROUP BY source, kind ORDER BY source, kind;
SELECT b.source, b.strategy, count(*) AS bins,
       bool_and(x.n_treated = b.n_treated AND x.n_control = b.n_control) AS counts,
       bool_and(pg_temp.close(x.rate_treated, b.rate_treated, 1e-12) AND pg_temp.close(x.rate_control, b.rate_control, 1e-12)) AS rates,
       bool_and(pg_temp.close(x.uplift, b.uplift, 1e-12)) AS uplift,
       bool_and(pg_temp.close(x.uplift_low, b.uplift_low, 1e-9) AND pg_temp.close(x.uplift_high, b.uplift_high, 1e-9)) AS intervals,
       bool_and(pg_temp.close(x.p_value, b.p_value, 1e-9)) AS p_values,
       count(*) FILTER (WHERE b.uplift IS NULL) AS undefined
FROM ref_bins b JOIN samples USING (source)
JOIN LATERAL uplift_by_percentile(samples.s, 10, b.strategy) x ON x.bin = b.bin
GROUP BY b.source, b.strategy ORDER BY b.source, b.strategy;

-- the sample does not depend on the row order; rows with a NULL are skipped
SELECT (SELECT uplift_summary(uplift_sample(outcome, treatment, model)) FROM scored) =
       (SELECT uplift_summary(uplift_sample(outcome, treatment, model))
        FROM (SELECT * FROM scored UNION ALL SELECT id, NULL, true, x1, x2, seg, 0.5, 0 FROM scored WHERE id < 5
              ORDER BY model, id DESC) s) AS order_and_nulls;

-- whom to target: the top 30% by predicted uplift, and the decile view of that choice
SELECT count(*) AS targeted FROM (SELECT e.id FROM experiment e ORDER BY uplift_score('tl', e) DESC
                                  LIMIT (SELECT count(*) * 3 / 10 FROM experiment)) t;
WITH quintiles AS (SELECT * FROM uplift_by_percentile((SELECT uplift_sample(e.outcome, e.treatment, uplift_score('tl', e))
                                                      FROM experiment e), 5))
SELECT count(*) AS bins, sum(n_treated + n_control) AS rows,
       (SELECT uplift FROM quintiles WHERE bin = 1) > (SELECT uplift FROM quintiles WHERE bin = 5) AS top_beats_bottom
FROM quintiles;

DROP TABLE experiment, ref_scores;
