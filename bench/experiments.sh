#!/usr/bin/env bash
# experiment_results over UNITS assigned units (default 10,000,000) in three arms with three
# metrics, against a plain aggregate over the same rows (the join of outcomes to assignments
# with built-in count/sum aggregates) measured in the same run. Medians of RUNS runs.
#
#   pg_virtualenv -v 15 bash bench/experiments.sh            # after make install
#   UNITS=1000000 RUNS=3 pg_virtualenv -v 15 bash bench/experiments.sh
#
# Outcome density follows an e-mail campaign (Hillstrom): about 15% of units visit, 1%
# convert and spend; 10% of the converters spend twice (rows summed per unit).
set -euo pipefail
UNITS=${UNITS:-10000000}
RUNS=${RUNS:-5}
db=pz_bench_experiments
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -c "ALTER SYSTEM SET max_parallel_workers_per_gather = 2" -c "ALTER SYSTEM SET work_mem = '256MB'" \
     -c "SELECT pg_reload_conf()" >/dev/null
# one session for loading and measuring: the module is loaded once
out=$(psql -At <<SQL
CREATE EXTENSION pg_personalize;
SELECT personalize.norm_cdf(0) IS NOT NULL;  -- load the module into this session now
SELECT personalize.create_experiment('bench', '{control,popularity,hybrid}') IS NOT NULL;
\\timing on
-- plain INSERT, foreign keys checked
INSERT INTO personalize.assignments (experiment, unit_id, arm)
SELECT 'bench', g, (ARRAY['control', 'popularity', 'hybrid'])[1 + floor(personalize.unit_hash('bench', g) * 3)::int]
FROM generate_series(1, $UNITS) g;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'bench', unit_id, 'visit', 1 FROM personalize.assignments
WHERE experiment = 'bench' AND random() < CASE arm WHEN 'control' THEN 0.14 WHEN 'popularity' THEN 0.15 ELSE 0.16 END;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'bench', unit_id, m, CASE m WHEN 'conversion' THEN 1 ELSE round((random() * 200)::numeric, 2)::float8 END
FROM (SELECT unit_id FROM personalize.assignments WHERE experiment = 'bench' AND random() < 0.01) c,
     (VALUES ('conversion'), ('spend')) v(m);
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT experiment, unit_id, metric, value FROM personalize.outcomes WHERE metric = 'spend' AND random() < 0.1;
\\timing off
VACUUM ANALYZE personalize.assignments;
VACUUM ANALYZE personalize.outcomes;
SELECT 'outcome rows: ' || count(*) FROM personalize.outcomes;
SELECT '--measure--';
\\timing on
$(for i in $(seq "$RUNS"); do cat <<'Q'
SELECT count(*) FROM (
  SELECT a.arm, NULL::text AS metric, count(*) AS n, NULL::float8 AS s, NULL::float8 AS ss
  FROM personalize.assignments a GROUP BY a.arm
  UNION ALL
  SELECT a.arm, o.metric, count(*), sum(o.value), sum(o.value * o.value)
  FROM personalize.outcomes o JOIN personalize.assignments a ON a.experiment = o.experiment AND a.unit_id = o.unit_id
  GROUP BY a.arm, o.metric) baseline;
SELECT count(*) FROM personalize.experiment_results WHERE experiment = 'bench';
Q
done)
\\timing off
\\pset format aligned
\\pset tuples_only off
SELECT metric, arm, n, round(mean::numeric, 5) AS mean, round(lift_rel::numeric, 4) AS lift_rel, p_value, p_bh
FROM personalize.experiment_results WHERE experiment = 'bench';
SQL
)
echo "$out" | sed -n '1,/--measure--/p' | grep -E '^(Time|outcome)'
echo "$out" | sed -n '/--measure--/,$p' | grep -E '^Time' | awk '{print $2}' > /tmp/pz_bench_times.$$
/usr/bin/python3 - "$RUNS" "$UNITS" /tmp/pz_bench_times.$$ <<'PY'
import statistics, sys
runs, units, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = [float(x) for x in open(path)]
base, ours = t[0::2], t[1::2]
mb, mo = statistics.median(base), statistics.median(ours)
print(f"{'query':<44}{'median ms':>12}{'runs':>6}{'ratio':>8}")
print(f"{'plain aggregate (join + count/sum), baseline':<44}{mb:>12.0f}{runs:>6}{1:>8.2f}")
print(f"{'experiment_results (3 arms x 3 metrics)':<44}{mo:>12.0f}{runs:>6}{mo / mb:>8.2f}")
print(f"units: {units:,}; bar: experiment_results under 10 s -> {'met' if mo < 10000 else 'NOT met'}")
PY
rm -f /tmp/pz_bench_times.$$
echo "$out" | sed -n '/--measure--/,$p' | sed -n '/metric/,$p'
dropdb "$db"
