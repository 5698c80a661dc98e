#!/usr/bin/env bash
# Validation on real data: UCI Adult from ../shared/data/adult (skipped when absent).
# A logistic baseline trained in Python (scikit-learn) scores adult.test; its predictions are
# loaded into PostgreSQL and our fairness figures by sex and race are printed beside the
# Python reference (confusion matrices, fairlearn's definitions), with the largest difference.
# Needs PG* pointing at a cluster with the extension installed, e.g.:
#   pg_virtualenv -v 15 bash bench/validate_fairness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/adult
if [ ! -f "$data/adult.data" ] || [ ! -f "$data/adult.test" ]; then
  echo "skipped: $data not found"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 bench/validate_fairness.py "$data" "$out"

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION IF NOT EXISTS pg_personalize;
DROP TABLE IF EXISTS adult_scored;
CREATE TABLE adult_scored (id int, sex text, race text, label boolean, score float8);
\copy adult_scored FROM '$out/predictions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_groups (attribute text, group_value text, n bigint, base_rate float8, selection_rate float8,
  tpr float8, fpr float8, "precision" float8);
\copy ref_groups FROM '$out/groups.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE ref_summary (attribute text, dpd float8, dpr float8, eod float8, eor float8, eopd float8);
\copy ref_summary FROM '$out/summary.tsv' WITH (FORMAT csv, DELIMITER E'\t')
\pset footer off
\echo '== per group: ours (pg) beside the reference (py)'
SELECT r.attribute, r.group_value, o.n, r.n AS n_py,
       round(o.selection_rate::numeric, 6) AS sel, round(r.selection_rate::numeric, 6) AS sel_py,
       round(o.tpr::numeric, 6) AS tpr, round(r.tpr::numeric, 6) AS tpr_py,
       round(o.fpr::numeric, 6) AS fpr, round(r.fpr::numeric, 6) AS fpr_py,
       round(o."precision"::numeric, 6) AS prec, round(r."precision"::numeric, 6) AS prec_py
FROM ref_groups r
JOIN LATERAL personalize.fairness_by_group('adult_scored', r.attribute, 'label', 'score >= 0.5') o
  ON o.group_value = r.group_value
ORDER BY r.attribute DESC, r.n DESC;
\echo '== summary: ours beside the reference'
SELECT r.attribute, 'demographic_parity_difference' AS figure, o.demographic_parity_difference AS pg, r.dpd AS py FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o
UNION ALL SELECT r.attribute, 'demographic_parity_ratio', o.demographic_parity_ratio, r.dpr FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o
UNION ALL SELECT r.attribute, 'equalized_odds_difference', o.equalized_odds_difference, r.eod FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o
UNION ALL SELECT r.attribute, 'equalized_odds_ratio', o.equalized_odds_ratio, r.eor FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o
UNION ALL SELECT r.attribute, 'equal_opportunity_difference', o.equal_opportunity_difference, r.eopd FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o
ORDER BY 1 DESC, 2;
\echo '== largest absolute difference over every figure (bar: 1e-9)'
SELECT max(greatest(abs(o.base_rate - r.base_rate), abs(o.selection_rate - r.selection_rate), abs(o.tpr - r.tpr),
                    abs(o.fpr - r.fpr), abs(o."precision" - r."precision"), abs(o.n - r.n))) AS max_abs_diff_groups,
       bool_and(o.n = r.n) AS counts_equal
FROM ref_groups r
JOIN LATERAL personalize.fairness_by_group('adult_scored', r.attribute, 'label', 'score >= 0.5') o ON o.group_value = r.group_value;
SELECT max(greatest(abs(o.demographic_parity_difference - r.dpd), abs(o.demographic_parity_ratio - r.dpr),
                    abs(o.equalized_odds_difference - r.eod), abs(o.equalized_odds_ratio - r.eor),
                    abs(o.equal_opportunity_difference - r.eopd))) AS max_abs_diff_summary
FROM ref_summary r, personalize.fairness_summary('adult_scored', r.attribute, 'label', 'score >= 0.5') o;
DROP TABLE adult_scored;
SQL
