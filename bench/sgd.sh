#!/usr/bin/env bash
# SGD throughput of bpr and hybrid on the synthetic set of bench/models.sh (10M
# power-law interactions, 200,000 users x 50,000 items at SCALE=1). Needs a cluster
# with the extension installed (PG* variables). Heavy: run under
# flock /work/tools/bench.lock.
#
#   bash bench/sgd.sh              # 10M interactions, 64 factors
#   SCALE=0.1 bash bench/sgd.sh    # a tenth
#
# Prints, per variant and thread count, the median seconds per epoch over 3 epochs
# and interactions (drawn positives) per second, in total and per thread; beside
# them, measured in the same run: ALS's interactions per second per iteration on the
# same data (the collaborative baseline's cost), and a bound from memory: a BPR step
# reads and writes three rows of 65 floats at random (user, positive, negative),
# 3 x 2 x 260 bytes, against the sequential read bandwidth of bench/membw.c (an
# optimistic bound: the rows are read at random).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_db pgp_bench_sgd
trap 'dropdb --if-exists "$db" >/dev/null 2>&1; rm -f /tmp/pgp_membw' EXIT

powerlaw_size

echo "== synthetic power-law interactions (bench/models.sh): $users users, $items items, $rows rows; uptime: $(uptime)"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.42);
$(powerlaw_sql inter "$rows")
-- four features per item (hybrid): two of 20 categories, one of 100 brands, one of 10 price bands
CREATE TABLE item_features AS
SELECT i AS item_id, f AS feature FROM generate_series(0, $items - 1) i,
  LATERAL (VALUES ('category:' || i % 20), ('category:' || (i * 7) % 20), ('brand:' || (i * 13) % 100), ('price:' || (i * 31) % 10)) v(f);
ANALYZE;
SQL
pairs=$(psql -At -c "SELECT count(DISTINCT (user_id, item_id)) FROM inter")
echo "distinct pairs (positives per epoch): $pairs"

cc -O2 -o /tmp/pgp_membw bench/membw.c 2>/dev/null
bw=$(/tmp/pgp_membw 2>/dev/null || echo 0)


epoch_median() {  # SQL of one training -> median epoch seconds
  psql -c "SET max_parallel_workers_per_gather = 0" -c "SET client_min_messages = debug1" -c "$1" 2>&1 >/dev/null | grep -o 'epoch [0-9]* of [0-9]*: [0-9.]* s' | awk '{print $5}' | median
}
printf '%-34s | %-7s | %-9s | %-14s | %-14s | %s\n' variant threads "s/epoch" "interactions/s" "per thread" "bound (memory)"
for t in 1 2; do
  s=$(epoch_median "SELECT personalize.model_info(personalize.bpr_fit(user_id, item_id, weight, '{\"factors\": 64, \"iterations\": 3, \"threads\": $t}')) FROM inter")
  awk -v n="$pairs" -v s="$s" -v t="$t" -v bw="$bw" 'BEGIN {
    r = n / s; b = bw > 0 ? sprintf("%.0f", bw * 1e9 / (3 * 2 * 260)) : "-";
    printf "%-34s | %-7d | %-9.2f | %-14.0f | %-14.0f | %s\n", "bpr, 64 factors", t, s, r, r / t, b }'
done
for t in 1 2; do
  s=$(epoch_median "SELECT personalize.model_info(personalize.hybrid_fit(user_id, item_id, weight, NULL, '{\"core\": \"warp\", \"factors\": 64, \"iterations\": 3, \"threads\": $t, \"item_features\": \"item_features\"}')) FROM inter")
  awk -v n="$pairs" -v s="$s" -v t="$t" 'BEGIN {
    r = n / s; printf "%-34s | %-7d | %-9.2f | %-14.0f | %-14.0f | %s\n", "hybrid WARP, 64 factors, 4 features", t, s, r, r / t, "-" }'
done
s=$(psql -c "SET max_parallel_workers_per_gather = 0" -c "SET client_min_messages = debug1" \
         -c "SELECT personalize.model_info(personalize.als_fit(user_id, item_id, weight, '{\"factors\": 64, \"iterations\": 3, \"threads\": 2}')) FROM inter" 2>&1 >/dev/null \
    | grep -o 'iteration [0-9]* of 3: [0-9.]* s' | awk '{print $5}' | median)
awk -v n="$pairs" -v s="$s" 'BEGIN { r = n / s; printf "%-34s | %-7d | %-9.2f | %-14.0f | %-14.0f | %s\n", "baseline: als iteration, 64 factors", 2, s, r, r / 2, "-" }'
echo "memory read bandwidth (bench/membw.c, one core): ${bw} GB/s; uptime: $(uptime)"
