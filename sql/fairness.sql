-- Fairness figures against the scikit-learn reference (fairlearn's definitions), to 1e-9.
SET search_path = personalize, public;

CREATE TABLE fdata (id int PRIMARY KEY, grp text, label boolean, score float8, day int);
\copy fdata FROM 'test/reference/fairness_data.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_groups (subset text, group_value text, n bigint, base_rate float8, selection_rate float8,
  tpr float8, fpr float8, "precision" float8);
\copy ref_groups FROM 'test/reference/fairness_groups.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_summary (subset text, dpd float8, dpr float8, eod float8, eor float8, eopd float8);
\copy ref_summary FROM 'test/reference/fairness_summary.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

-- |a - b| <= 1e-9, or both NULL
CREATE FUNCTION pg_temp.close(a float8, b float8) RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN a IS NULL OR b IS NULL THEN a IS NULL AND b IS NULL ELSE abs(a - b) <= 1e-9 END $$;

CREATE TEMP VIEW cmp_all AS
SELECT r.group_value, o.n = r.n AS n_ok,
       pg_temp.close(o.base_rate, r.base_rate) AND pg_temp.close(o.selection_rate, r.selection_rate)
       AND pg_temp.close(o.tpr, r.tpr) AND pg_temp.close(o.fpr, r.fpr)
       AND pg_temp.close(o."precision", r."precision") AS rates_ok
FROM ref_groups r
FULL JOIN fairness_by_group('fdata', 'grp', 'label', 'score >= 0.5') o
  ON coalesce(o.group_value, '(null)') = coalesce(r.group_value, '(null)') AND r.subset = 'all'
WHERE r.subset = 'all' OR r.subset IS NULL;

-- every group (NULL group included) agrees; nopos has NULL tpr, noneg NULL fpr
SELECT coalesce(group_value, '(null)') AS grp, n_ok, rates_ok FROM cmp_all ORDER BY 1;
SELECT group_value, tpr, fpr FROM fairness_by_group('fdata', 'grp', 'label', 'score >= 0.5')
WHERE tpr IS NULL OR fpr IS NULL ORDER BY 1;
-- rows without a label are left out of n
SELECT (SELECT sum(n) FROM fairness_by_group('fdata', 'grp', 'label', 'score >= 0.5')) AS n,
       (SELECT count(*) FROM fdata WHERE label IS NOT NULL) AS labelled;

-- the summary
SELECT pg_temp.close(s.demographic_parity_difference, r.dpd) AS dpd,
       pg_temp.close(s.demographic_parity_ratio, r.dpr) AS dpr,
       pg_temp.close(s.equalized_odds_difference, r.eod) AS eod,
       pg_temp.close(s.equalized_odds_ratio, r.eor) AS eor,
       pg_temp.close(s.equal_opportunity_difference, r.eopd) AS eopd
FROM fairness_summary('fdata', 'grp', 'label', 'score >= 0.5') s, ref_summary r WHERE r.subset = 'all';

-- a boolean prediction column, a query as source, an integer label give the same figures
CREATE TABLE fpred AS SELECT grp AS "Group", label::int AS y, score >= 0.5 AS "Pred" FROM fdata;
SELECT count(*) AS groups_equal FROM fairness_by_group('fpred', 'Group', 'y', 'Pred') a
JOIN fairness_by_group('fdata', 'grp', 'label', 'score >= 0.5') b ON a.group_value IS NOT DISTINCT FROM b.group_value
WHERE (a.n, a.base_rate, a.selection_rate, a.tpr, a.fpr, a."precision") IS NOT DISTINCT FROM
      (b.n, b.base_rate, b.selection_rate, b.tpr, b.fpr, b."precision");
SELECT count(*) AS groups_equal FROM fairness_by_group('SELECT grp, label, score >= 0.5 AS p FROM fdata', 'grp', 'label', 'p') a
JOIN fairness_by_group('fdata', 'grp', 'label', 'score >= 0.5') b ON a.group_value IS NOT DISTINCT FROM b.group_value
WHERE (a.n, a.tpr, a.fpr) IS NOT DISTINCT FROM (b.n, b.tpr, b.fpr);

-- empty input: no groups, a summary of NULLs
SELECT * FROM fairness_by_group('SELECT * FROM fdata WHERE false', 'grp', 'label', 'score >= 0.5');
SELECT * FROM fairness_summary('SELECT * FROM fdata WHERE false', 'grp', 'label', 'score >= 0.5');
-- one group: differences 0, ratios 1
SELECT * FROM fairness_summary('SELECT * FROM fdata WHERE grp = ''a''', 'grp', 'label', 'score >= 0.5');
-- nothing predicted positive: selection rates 0, ratio undefined (NULL), precision NULL
SELECT * FROM fairness_summary('fdata', 'grp', 'label', 'false AND score > 0');
SELECT count(*) FILTER (WHERE "precision" IS NULL) AS null_precision FROM fairness_by_group('fdata', 'grp', 'label', 'false AND score > 0');
-- NULL arguments: STRICT, no rows
SELECT count(*) FROM fairness_by_group(NULL, 'grp', 'label', 'score >= 0.5');

-- monitoring: the prediction log and the daily views agree with the reference per day
INSERT INTO prediction_log (model, subject_id, score, prediction, label, attributes, logged_at)
SELECT 'm1', id, score, score >= 0.5, label, jsonb_build_object('grp', grp), '2026-03-01 12:00+00'::timestamptz + day * interval '1 day'
FROM fdata;
INSERT INTO prediction_log (model, subject_id, score, prediction, label, attributes)
VALUES ('m1', 1, 0.9, true, NULL, '{"grp": "a"}');   -- not labelled yet: left out
SELECT r.subset, count(*) AS groups,
       bool_and(g.n = r.n AND pg_temp.close(g.selection_rate, r.selection_rate) AND pg_temp.close(g.tpr, r.tpr)
                AND pg_temp.close(g.fpr, r.fpr) AND pg_temp.close(g."precision", r."precision")
                AND pg_temp.close(g.base_rate, r.base_rate)) AS agree
FROM fairness_daily_groups g
JOIN ref_groups r ON r.subset = 'day' || (g.day - date '2026-03-01') AND r.group_value IS NOT DISTINCT FROM g.group_value
WHERE g.model = 'm1' AND g.attribute = 'grp'
GROUP BY r.subset ORDER BY 1;
SELECT d.day, d.groups, d.n,
       pg_temp.close(d.demographic_parity_difference, r.dpd) AND pg_temp.close(d.demographic_parity_ratio, r.dpr)
       AND pg_temp.close(d.equalized_odds_difference, r.eod) AND pg_temp.close(d.equalized_odds_ratio, r.eor)
       AND pg_temp.close(d.equal_opportunity_difference, r.eopd) AS agree
FROM fairness_daily d JOIN ref_summary r ON r.subset = 'day' || (d.day - date '2026-03-01')
WHERE d.model = 'm1' AND d.attribute = 'grp' ORDER BY d.day;

-- ranking exposure against numpy
CREATE TABLE catalog (item_id int, item_group text);
\copy catalog FROM 'test/reference/exposure_catalog.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE recs (list_id int, item_id int, rank int);
\copy recs FROM 'test/reference/exposure_recs.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_exposure (group_value text, catalog_items bigint, catalog_share float8, exposure float8,
  exposure_share float8, exposure_ratio float8);
\copy ref_exposure FROM 'test/reference/exposure_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT coalesce(r.group_value, '(null)') AS grp, o.catalog_items = r.catalog_items AS items_ok,
       pg_temp.close(o.catalog_share, r.catalog_share) AND pg_temp.close(o.exposure, r.exposure)
       AND pg_temp.close(o.exposure_share, r.exposure_share) AND pg_temp.close(o.exposure_ratio, r.exposure_ratio) AS agree
FROM ref_exposure r
FULL JOIN exposure_by_group('recs', 'catalog', 'item_id', 'item_group') o ON coalesce(o.group_value, '(null)') = coalesce(r.group_value, '(null)')
ORDER BY 1;
-- no recommendations: catalog shares, zero exposure, NULL shares of exposure
SELECT * FROM exposure_by_group('SELECT * FROM recs WHERE false', 'catalog', 'item_id', 'item_group');
