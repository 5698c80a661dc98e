#!/usr/bin/env bash
# What logistic_pass_flat (the pass Citus pushes down) costs against
# logistic_pass on a local table, to decide where the driver uses it. Needs a
# cluster with the extension installed (PG* variables). Run it under
#   flock /work/tools/bench.lock bash bench/propensity_flat.sh
#   SCALE=0.1 bash bench/propensity_flat.sh      # a tenth of the rows
#
# Data: 2M rows x 10 float8 features, an integer array of 2, a text feature of
# 8 levels and a boolean label. Prints seconds (median of 5) of count(*), one
# pass of each aggregate at the fitted coefficients over every row, serial and
# with parallel query as configured, with the ratio to logistic_pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1}
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 2000000 * s}')
runs=5
db=pgp_bench_propensity_flat
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { psql -c '\timing on' -c "$1" -c "$2" | awk '/^Time:/ {t = $2} END {printf "%.3f\n", t / 1000}'; }

numbers=$(seq -s, 1 10 | sed 's/[0-9]\+/f&/g')
echo "== $rows rows x (10 float8, int[2], text of 8 levels); load: $(uptime | sed 's/.*load average: //')"
psql >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.3);
CREATE TABLE wide AS
SELECT s.*, random() < 1 / (1 + exp(0.5 - ($(for i in $(seq 1 10); do printf '(%s / 10.0 - 0.5) * f%d + ' "$i" "$i"; done) 0.1 * v[1]))) AS label
FROM (SELECT $(for i in $(seq 1 10); do printf 'random() * 2 - 1 AS f%d, ' "$i"; done)
             ARRAY[(random() * 5)::int, (random() * 3)::int] AS v, 'level' || (random() * 7)::int AS seg
      FROM generate_series(1, $rows)) s;
VACUUM ANALYZE wide;
SELECT personalize.train_classifier('wide', 'wide', 'label', '{$numbers,v,seg}');
SQL
spec=$(psql -At -c "SELECT personalize.logistic_spec(personalize.model_export('wide', 1))")
variadic="SELECT personalize.logistic_pass('$spec'::bytea, s.label, 1::float8, $(sed 's/f/s.f/g' <<< "$numbers"), s.v, s.seg) FROM wide AS s"
flat="SELECT personalize.logistic_pass_flat('$spec'::bytea, (s.label)::int4::float8, 1::float8,
  (ARRAY[$(sed 's/f\([0-9]*\)/(s.f\1)::pg_catalog.float8/g' <<< "$numbers")] OPERATOR(pg_catalog.||) (s.v)::pg_catalog.float8[])::pg_catalog.float8[],
  ARRAY[(s.seg)::pg_catalog.text]::pg_catalog.text[]) FROM wide AS s"
printf '%-28s | %-8s | %-8s | %s\n' "what (median of $runs)" "serial s" "parallel s" "ratio to logistic_pass (serial, parallel)"
declare -A t
for what in count variadic flat; do
  case $what in count) q="SELECT count(*) FROM wide";; variadic) q=$variadic;; flat) q=$flat;; esac
  t[$what,s]=$(for _ in $(seq $runs); do timed "SET max_parallel_workers_per_gather = 0" "$q"; done | median)
  t[$what,p]=$(for _ in $(seq $runs); do timed "RESET max_parallel_workers_per_gather" "$q"; done | median)
done
for what in count variadic flat; do
  printf '%-28s | %-8s | %-10s | %s\n' "$what" "${t[$what,s]}" "${t[$what,p]}" \
    "$(awk -v a="${t[$what,s]}" -v b="${t[variadic,s]}" -v c="${t[$what,p]}" -v d="${t[variadic,p]}" 'BEGIN {printf "%.2f, %.2f", a / b, c / d}')"
done
echo "load at the end: $(uptime | sed 's/.*load average: //')"
