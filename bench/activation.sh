#!/usr/bin/env bash
# Request latency while a new version is trained and activated under load
# (the activation bar of bench/scale.sh on a model of any size): CLIENTS
# pgbench clients serve recommend() from MODEL for PRE seconds, a 1-iteration
# ALS training of a new version of it commits (it becomes active), and they
# go on until POST seconds after the longest training. Prints p50 / p99 / max latency in ms of every
# request of each run, then the medians over RUNS runs. Needs the model
# (trained from TABLE) and pg_personalize in shared_preload_libraries.
#
#   MODEL=scale10 TABLE=inter10 DB=pgp_scale RUNS=3 bash bench/activation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ACTIVATION_LOCK_HELD:-}" ] && [ -e /work/tools/bench.lock ]; then
  exec env ACTIVATION_LOCK_HELD=1 flock /work/tools/bench.lock bash "$0" "$@"
fi
db=${DB:-pgp_scale}
model=${MODEL:-scale10}
table=${TABLE:-inter10}
clients=${CLIENTS:-4}
runs=${RUNS:-3}
pre=${PRE:-5}
post=${POST:-5}
factors=${FACTORS:-64}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
users=$(psql -X -At -d "$db" -c "SELECT users FROM personalize.models WHERE name = '$model' AND active")
# users by index: ids of the model's users, in a table the clients sample from
psql -X -q -d "$db" -c "DROP TABLE IF EXISTS activation_users" \
  -c "CREATE TABLE activation_users AS SELECT row_number() OVER () - 1 AS i, id AS user_id FROM personalize.user_embeddings('$model')" \
  -c "CREATE UNIQUE INDEX ON activation_users (i)" -c "ANALYZE activation_users"
cat >"$out/rec.sql" <<SQL
\set i random(0, $users - 1)
SELECT r.* FROM activation_users a, personalize.recommend('$model', a.user_id, 10) r WHERE a.i = :i;
SQL
echo "load before: $(uptime)"
train() {
  psql -X -q -d "$db" -c "SET client_min_messages = warning" \
    -c "SELECT personalize.train('$model', 'als', '$table', '{\"factors\": $factors, \"iterations\": 1, \"seed\": $1}')" >/dev/null
}
# a first training, unloaded: how long the clients must run
start=$(date +%s.%N); train 0; end=$(date +%s.%N)
span=$(awk -v a="$start" -v b="$end" -v p="$pre" -v q="$post" 'BEGIN {t = 5 * (b - a); printf "%d", p + (t > 40 ? t : 40) + q + 1}')
for r in $(seq "$runs"); do
  rm -f "$out"/pgbench_log.*
  (cd "$out" && pgbench -n -c "$clients" -j "$clients" -T "$span" -f "$out/rec.sql" -l "$db" >"$out/summary" 2>&1) &
  bench=$!
  sleep "$pre"
  start=$(date +%s.%N)
  train "$r"
  committed=$(date +%s.%N)
  wait "$bench"
  grep -o 'failed: [0-9]*' "$out/summary" | sed 's/^/  /' || echo "  pgbench: $(tail -1 "$out/summary")"
  # per request: end time (s), latency (ms); pgbench logs epoch seconds and µs
  cat "$out"/pgbench_log.* | awk '{printf "%d.%06d %.3f\n", $5, $6, $3 / 1000}' >"$out/requests"
  awk '{print $2}' "$out/requests" | sort -g | awk -v a="$start" -v c="$committed" -v r="$r" '{l[NR] = $1} END {
      n = NR; printf "run %d: %d requests, p50 %.2f p99 %.2f max %.1f ms (training %.1f s)\n", r, n, l[int(n*0.5)+1], l[int(n*0.99)+1], l[n], c - a}' | tee -a "$out/runs"
  # the slowest requests and when they ended, relative to the commit
  sort -k2 -g -r "$out/requests" | head -3 | awk -v c="$committed" '{printf "  slow: %.1f ms, ended %+.3f s from the commit\n", $2, $1 - c}' || true
  sleep 2
done
echo "load after: $(uptime)"
echo "median of $runs runs: p50 $(awk '{print $6}' "$out/runs" | median) ms, p99 $(awk '{print $8}' "$out/runs" | median) ms, max $(awk '{print $10}' "$out/runs" | median) ms"
psql -X -q -d "$db" -c "DROP TABLE IF EXISTS activation_users"
