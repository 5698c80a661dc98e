-- Classification and calibration against scikit-learn (test/reference/ref_evaluation.py), to 1e-9.
SET search_path = public, personalize;

CREATE TABLE predictions (label bool, score float8);
\copy predictions FROM 'test/reference/evaluation_predictions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected (threshold float8, bins int, strategy text, n bigint, positives bigint, auc float8,
  log_loss float8, brier float8, ece float8, accuracy float8, "precision" float8, recall float8, f1 float8);
\copy expected FROM 'test/reference/evaluation_classification.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected_bins (bins int, strategy text, bin int, lower_edge float8, upper_edge float8, n bigint,
  mean_score float8, fraction_positive float8);
\copy expected_bins FROM 'test/reference/evaluation_reliability.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')

CREATE FUNCTION pg_temp.close(a float8, b float8) RETURNS bool LANGUAGE sql IMMUTABLE
AS $$ SELECT abs(a - b) <= 1e-9 * greatest(1, abs(b)) $$;

SELECT e.threshold, e.bins, e.strategy, m.n = e.n AND m.positives = e.positives AS counts,
       pg_temp.close(m.auc, e.auc) AS auc_ok, pg_temp.close(m.log_loss, e.log_loss) AS log_loss_ok,
       pg_temp.close(m.brier, e.brier) AS brier_ok, pg_temp.close(m.ece, e.ece) AS ece_ok,
       pg_temp.close(m.accuracy, e.accuracy) AS accuracy_ok, pg_temp.close(m.precision, e.precision) AS precision_ok,
       pg_temp.close(m.recall, e.recall) AS recall_ok, pg_temp.close(m.f1, e.f1) AS f1_ok
FROM expected e,
     LATERAL (SELECT (classification_metrics(label, score, e.threshold, e.bins, e.strategy)).* FROM predictions) m
ORDER BY e.threshold;

-- the two-argument form: threshold 0.5, 10 uniform bins
SELECT (SELECT classification_metrics(label, score) FROM predictions) =
       (SELECT classification_metrics(label, score, 0.5, 10, 'uniform') FROM predictions) AS defaults;

-- reliability bins, every bin
SELECT e.bins, e.strategy, count(*) AS bins_checked,
       bool_and(r.n = e.n AND pg_temp.close(r.lower_edge, e.lower_edge) AND pg_temp.close(r.upper_edge, e.upper_edge)
                AND (e.n = 0 OR (pg_temp.close(r.mean_score, e.mean_score)
                                 AND pg_temp.close(r.fraction_positive, e.fraction_positive)))) AS all_agree
FROM expected_bins e
JOIN LATERAL reliability_bins((SELECT score_sample(label, score) FROM predictions), e.bins, e.strategy) r
  ON r.bin = e.bin
GROUP BY e.bins, e.strategy ORDER BY e.bins;

-- grouped, NULL rows skipped, order of rows irrelevant
SELECT label, (classification_metrics(label, score)).n FROM predictions GROUP BY label ORDER BY label;
SELECT (SELECT classification_metrics(label, score) FROM (SELECT * FROM predictions UNION ALL SELECT NULL, 0.5
                                                          UNION ALL SELECT true, NULL) s) =
       (SELECT classification_metrics(label, score) FROM (SELECT * FROM predictions ORDER BY score DESC) s) AS nulls_skipped;

-- documented NULLs: one class only (AUC), scores outside [0,1] (log loss, Brier, ECE), no rows
SELECT n, positives, auc, log_loss IS NOT NULL AS has_log_loss FROM
  (SELECT (classification_metrics(label, score)).* FROM predictions WHERE label) s;
SELECT n, auc IS NOT NULL AS has_auc, log_loss, brier, ece, accuracy IS NOT NULL AS has_accuracy FROM
  (SELECT (classification_metrics(label, score * 4 - 2)).* FROM predictions) s;
SELECT (classification_metrics(label, score)).* FROM predictions WHERE false;
SELECT "precision", recall, f1 FROM (SELECT (classification_metrics(label, score, 2.0)).* FROM predictions) s;

-- bad input (SQLSTATEs in test/evaluation_errors.sql)
SELECT classification_metrics(true, 'NaN'::float8);
SELECT classification_metrics(true, 0.5, 0.5, 0, 'uniform');
SELECT classification_metrics(true, 0.5, 0.5, 10, 'equal');
SELECT * FROM reliability_bins((SELECT score_sample(label, score * 2) FROM predictions));

DROP TABLE predictions;
