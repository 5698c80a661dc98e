#!/usr/bin/env bash
# Hillstrom's e-mail experiment (64,000 customers; arms 'No E-Mail' = control, 'Mens E-Mail',
# 'Womens E-Mail'; metrics visit, conversion, spend) read out by pg_personalize and by
# statsmodels/scipy, each figure beside the other, plus segment effects by channel and newbie.
# Fails when any figure differs by more than 1e-9 relative.
#
#   pg_virtualenv -v 15 bash bench/validate_experiments.sh        # after make install
set -euo pipefail
cd "$(dirname "$0")/.."
data=${HILLSTROM:-../shared/data/hillstrom/hillstrom.csv}
if [ ! -f "$data" ]; then
  echo "skipped: $data not found (the shared data directory is not present)"
  exit 0
fi
data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
db=pz_validate_experiments
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
CREATE EXTENSION pg_personalize;
CREATE TABLE hillstrom (recency int, history_segment text, history float8, mens int, womens int,
  zip_code text, newbie int, channel text, segment text, visit int, conversion int, spend float8);
\copy hillstrom FROM '$data' WITH (FORMAT csv, HEADER)
ALTER TABLE hillstrom ADD COLUMN unit_id bigserial;
SELECT personalize.create_experiment('hillstrom', ARRAY['No E-Mail', 'Mens E-Mail', 'Womens E-Mail']) IS NOT NULL AS created \\g /dev/null
-- a past experiment: plain INSERTs
INSERT INTO personalize.assignments (experiment, unit_id, arm) SELECT 'hillstrom', unit_id, segment FROM hillstrom;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'hillstrom', unit_id, m, v FROM hillstrom,
  LATERAL (VALUES ('visit', visit::float8), ('conversion', conversion), ('spend', spend)) o(m, v)
WHERE v <> 0;   -- zeros need no rows: every assigned unit counts, missing means 0
\copy (SELECT metric, arm, n, mean, stddev, lift_abs, lift_abs_low, lift_abs_high, lift_rel, lift_rel_low, lift_rel_high, p_value, p_bonferroni, p_bh, p_holm, test FROM personalize.experiment_results WHERE experiment = 'hillstrom') TO '$out/results.csv' WITH (FORMAT csv, HEADER)
\copy (SELECT 'channel' AS by, m AS metric, s.* FROM unnest(ARRAY['visit','conversion','spend']) m, personalize.segment_effects('hillstrom', m, 'SELECT unit_id, channel FROM hillstrom') s UNION ALL SELECT 'newbie', m, s.* FROM unnest(ARRAY['visit','conversion','spend']) m, personalize.segment_effects('hillstrom', m, 'SELECT unit_id, newbie FROM hillstrom') s) TO '$out/segments.csv' WITH (FORMAT csv, HEADER)
\copy (SELECT arms, units, srm_chi2, srm_p_value, srm_flag FROM personalize.experiment_health WHERE experiment = 'hillstrom') TO '$out/health.csv' WITH (FORMAT csv, HEADER)
SQL
dropdb "$db"

/usr/bin/python3 - "$data" "$out" <<'PY'
import csv, math, sys
import numpy as np
sys.path.insert(0, "test/reference")
from ref_experiments import readout
from scipy import stats
from statsmodels.stats.multitest import multipletests

data, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(data)))
ARMS = ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
arm = np.array([ARMS.index(r["segment"]) for r in rows])
METRICS = ["visit", "conversion", "spend"]
values = {m: np.array([float(r[m]) for r in rows]) for m in METRICS}
COLS = ["n", "mean", "stddev", "lift_abs", "lift_abs_low", "lift_abs_high", "lift_rel", "lift_rel_low",
        "lift_rel_high", "p_value"]
worst = 0.0

def rel(a, b):
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return math.inf
    return 0.0 if a == b else abs(a - b) / max(abs(b), 1e-300)

def num(s):
    return None if s in ("", None) else float(s)

def show(title, ours, ref, cols):
    global worst
    print(f"\n== {title}")
    print(f"{'':<44}{'column':<14}{'pg_personalize':>24}{'statsmodels/scipy':>24}{'rel diff':>10}")
    for key in ours:
        for c in cols:
            a, b = num(ours[key].get(c)), ref[key].get(c)
            b = None if b is None else float(b)
            if a is None and b is None:
                continue
            d = rel(a, b)
            worst = max(worst, d)
            print(f"{' / '.join(str(k) for k in key):<44}{c:<14}{'' if a is None else f'{a:.15g}':>24}"
                  f"{'' if b is None else f'{b:.15g}':>24}{d:>10.1e}")

# experiment_results
ours = {(r["metric"], r["arm"]): r for r in csv.DictReader(open(f"{out}/results.csv"))}
ref, tests = {}, []
for m in METRICS:
    y = values[m]
    prop = bool(np.all((y == 0) | (y == 1)))
    for a, row in enumerate(readout(y, arm, prop)):
        ref[(m, ARMS[a])] = row
        if "p_value" in row:
            tests.append(row)
for method, col in (("bonferroni", "p_bonferroni"), ("fdr_bh", "p_bh"), ("holm", "p_holm")):
    for row, adj in zip(tests, multipletests([t["p_value"] for t in tests], method=method)[1]):
        row[col] = adj
show("experiment_results (Hillstrom, control 'No E-Mail')", ours, ref,
     COLS + ["p_bonferroni", "p_bh", "p_holm"])
print("tests:", ", ".join(sorted({f"{r['metric']}: {r['test']}" for r in ours.values()})))

# health
h = next(csv.DictReader(open(f"{out}/health.csv")))
counts = np.bincount(arm, minlength=3)
chi = stats.chisquare(counts)
show("experiment_health (sample ratio mismatch)", {("srm",): {"srm_chi2": h["srm_chi2"], "srm_p_value": h["srm_p_value"]}},
     {("srm",): {"srm_chi2": chi.statistic, "srm_p_value": chi.pvalue}}, ["srm_chi2", "srm_p_value"])
print("units per arm:", h["units"], " flag:", h["srm_flag"])

# segment effects
seg_rows = list(csv.DictReader(open(f"{out}/segments.csv")))
for by in ("channel", "newbie"):
    for m in METRICS:
        ours = {(by, m, r["segment"], r["arm"]): r for r in seg_rows if r["by"] == by and r["metric"] == m}
        y = values[m]
        prop = bool(np.all((y == 0) | (y == 1)))
        seg = np.array([r[by] for r in rows])
        ref, block = {}, []
        for s in sorted(set(seg)):
            mask = seg == s
            for a, row in enumerate(readout(y[mask], arm[mask], prop)):
                ref[(by, m, s, ARMS[a])] = row
                if "p_value" in row:
                    block.append(row)
        for row, adj in zip(block, multipletests([b["p_value"] for b in block], method="fdr_bh")[1]):
            row["p_bh"] = adj
        show(f"segment_effects by {by}: {m}", ours, ref, COLS + ["p_bh"])

print(f"\nlargest relative difference: {worst:.2e} (bar 1e-9)")
sys.exit(0 if worst <= 1e-9 else 1)
PY
