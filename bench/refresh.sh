#!/usr/bin/env bash
# A refresh end to end on the 10M-interaction set of bench/models.sh, with timestamps:
# where the time goes (phases sampled from personalize.training_progress by a second
# session about every 0.2 s; each interval between samples goes to the phase of the first),
# against a cold personalize.train on the same rows. Needs a cluster
# with the extension installed (PG* variables) and ~7 GB of memory; run it under
# `flock /work/tools/bench.lock`.
#
#   bash bench/refresh.sh
#   SCALE=0.1 bash bench/refresh.sh
#
# The first refresh (no champion) trains cold on 60 days of rows; then 5% more rows arrive
# over two days and the second refresh checks them, measures drift, trains a challenger
# warm-started from the first (8 iterations instead of 15), evaluates both on the last day
# (10,000 users) and promotes or keeps.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1}
db=pgp_bench_refresh
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
sampler=
trap '[ -n "$sampler" ] && kill "$sampler" 2>/dev/null; dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

users=$(awk -v s="$scale" 'BEGIN {printf "%d", 200000 * s}')
items=$(awk -v s="$scale" 'BEGIN {printf "%d", 50000 * (s < 1 ? 0.5 + s / 2 : 1)}')
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 10000000 * s}')
extra=$((rows / 20))
echo "== $rows interactions over 60 days, then $extra over two days; load: $(uptime | sed 's/.*load/load/')"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.42);
CREATE TABLE events AS
SELECT floor($users * power(random(), 1.5))::bigint AS user_id,
       floor($items * power(random(), 2.5))::bigint AS item_id,
       1::real AS weight,
       now() - interval '2 days' - random() * interval '60 days' AS occurred_at
FROM generate_series(1, $rows);
ANALYZE events;
SELECT personalize.register_refresh('big', 'events', 'als', '{"factors": 64, "iterations": 15}',
       '{"holdout": "1 day", "checks": {"thresholds": {"freshness": "3 days"}}}');
SQL

secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
start=$(date +%s.%N)
psql -At -F ' | ' -c "SELECT status, reason FROM personalize.refresh('big')"
echo "first refresh (cold, no champion): $(secs "$start" "$(date +%s.%N)") s"

psql <<SQL
SELECT setseed(0.43);
INSERT INTO events
SELECT floor($users * power(random(), 1.5))::bigint, floor($items * power(random(), 2.5))::bigint, 1,
       now() - random() * interval '2 days'
FROM generate_series(1, $extra);
ANALYZE events;
SQL

# sample the phases of the second refresh from another session
samples=$(mktemp)
( while true; do
    command psql -X -At -d "$db" -c "SELECT extract(epoch FROM clock_timestamp()), coalesce((SELECT phase FROM personalize.training_progress
                                     WHERE model_name = 'big'), '-')" >>"$samples" 2>/dev/null
    sleep 0.2
  done ) &
sampler=$!
start=$(date +%s.%N)
psql -At -F ' | ' -c "SELECT status, reason, warm_start, rows, training_rows FROM personalize.refresh('big')"
total=$(secs "$start" "$(date +%s.%N)")
kill "$sampler"; sampler=
echo "second refresh (warm start): $total s"
echo
printf '%-16s | %s\n' phase "seconds (sampled)"
awk -F '|' 'NF == 2 { if (last != "" && phase != "-") s[phase] += $1 - last; last = $1; phase = $2 }
            END {for (p in s) printf "%-16s | %.1f\n", p, s[p]}' "$samples" | sort -t '|' -k2 -gr
rm -f "$samples"

cutoff=$(psql -At -c "SELECT trained_until FROM personalize.refresh_runs ORDER BY run_id DESC LIMIT 1")
start=$(date +%s.%N)
psql -c "SET client_min_messages = warning" \
     -c "SELECT personalize.train('big_cold', 'als', \$\$SELECT * FROM events WHERE occurred_at < '$cutoff'\$\$, '{\"factors\": 64, \"iterations\": 15, \"activate\": false}')" >/dev/null
cold=$(secs "$start" "$(date +%s.%N)")
echo
echo "baseline: personalize.train of the same rows from a random start, 15 iterations: $cold s"
echo "the whole refresh (checks, drift, warm training, evaluation of both) / cold training: $(awk -v a="$total" -v b="$cold" 'BEGIN {printf "%.2f", a / b}')"
