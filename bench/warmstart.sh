#!/usr/bin/env bash
# ALS warm start (what refresh does): on the 10M-interaction set of bench/models.sh, a model
# is trained; 5% new interactions are appended; then ALS is trained on all of them from the
# random start (cold) and from the first model's factors (warm), 15 iterations each, with the
# loss after every iteration. Needs a cluster with the extension installed (PG* variables)
# and ~7 GB of memory; run it under `flock /work/tools/bench.lock`.
#
#   bash bench/warmstart.sh              # 10M + 500k interactions
#   SCALE=0.1 bash bench/warmstart.sh
#
# Prints the loss per iteration of both, the first warm iteration whose loss is within 0.5%
# of the cold model's loss after 15 iterations (the bar: at most half of them), and the
# seconds each needs to get there (median seconds per iteration from the DEBUG1 lines).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_db pgp_bench_warmstart

powerlaw_size
extra=$((rows / 20))
echo "== $users users, $items items: $rows interactions, then $extra more (5%); load: $(uptime | sed 's/.*load/load/')"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.42);
$(powerlaw_sql inter "$rows")
$(powerlaw_sql appended "$extra")
CREATE VIEW everything AS SELECT * FROM inter UNION ALL SELECT * FROM appended;
ANALYZE inter;
ANALYZE appended;
SQL

start=$(date +%s.%N)
psql -c "SET client_min_messages = warning" -c "SELECT personalize.train('champion', 'als', 'inter', '{\"factors\": 64, \"iterations\": 15}')" >/dev/null
echo "champion: 15 iterations on the first $rows rows in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
psql -At -c "SELECT 'new users: ' || (SELECT count(*) FROM (SELECT user_id FROM appended EXCEPT SELECT user_id FROM inter) u)
             || ', new items: ' || (SELECT count(*) FROM (SELECT item_id FROM appended EXCEPT SELECT item_id FROM inter) i)"

fit() {  # options -> "iteration seconds loss" lines
  psql -c "SET client_min_messages = debug1" \
       -c "SELECT personalize.model_info(personalize.als_fit(user_id, item_id, weight, '$1')) IS NOT NULL FROM everything" 2>&1 >/dev/null |
    sed -n 's/.*als iteration \([0-9]*\) of [0-9]*: \([0-9.]*\) s, loss \([0-9.e+-]*\).*/\1 \2 \3/p'
}
cold=$(fit '{"factors": 64, "iterations": 15, "calculate_loss": true}')
warm=$(fit '{"factors": 64, "iterations": 15, "calculate_loss": true, "warm_start": "champion"}')

echo
printf '%-9s | %-14s | %-8s | %-14s | %-8s\n' iteration "cold loss" "cold s" "warm loss" "warm s"
paste -d ' ' <(echo "$cold") <(echo "$warm") | awk '{printf "%-9s | %-14s | %-8s | %-14s | %-8s\n", $1, $3, $2, $6, $5}'

target=$(echo "$cold" | awk 'END {printf "%.9g", $3 * 1.005}')
cold_final=$(echo "$cold" | awk 'END {print $3}')
warm_it=$(echo "$warm" | awk -v t="$target" '$3 <= t {print $1; exit}')
cold_it=$(echo "$cold" | awk -v t="$target" '$3 <= t {print $1; exit}')
cold_s=$(echo "$cold" | awk '{print $2}' | median)
warm_s=$(echo "$warm" | awk '{print $2}' | median)
echo
echo "cold loss after 15 iterations: $cold_final; within 0.5%: <= $target"
warm_same=$(echo "$warm" | awk -v t="$cold_final" '$3 <= t {print $1; exit}')
echo "cold reaches it at iteration ${cold_it:-never}; warm at iteration ${warm_it:-never} (bar: <= 7, half of 15)"
echo "warm reaches the cold model's loss after 15 iterations itself at iteration ${warm_same:-never}"
if [ -n "${warm_it:-}" ]; then
  awk -v wi="$warm_it" -v ws="$warm_s" -v cs="$cold_s" 'BEGIN {
    printf "seconds of training to that loss: warm %d x %.2f = %.1f s, cold 15 x %.2f = %.1f s (%.1fx less)\n", wi, ws, wi * ws, cs, 15 * cs, 15 * cs / (wi * ws) }'
fi
