#!/usr/bin/env bash
# Speed of the data-quality checks against plain SQL over the same table. Needs a
# cluster with the extension installed (PG* variables).
#
#   bash bench/quality.sh              # 10M interactions (~0.6 GB table), 5 rounds
#   SCALE=0.1 ROUNDS=3 bash bench/quality.sh
#
# Each round runs every query once, in turn (so load from other work spreads over
# all of them); the table prints medians and the ratios of the medians:
#  - the row-level checks of check_interactions in one pass (NULL ids, weights,
#    timestamps, freshness, volume; duplicates and unseen ids skipped) against
#    count(*) of the table — the bar is 2x;
#  - check_interactions with the duplicate check against a plain
#    GROUP BY user_id, item_id, occurred_at HAVING count(*) > 1, at the default
#    work_mem and at 1 GB (the faster of the two is the baseline) — the bar is 1.2x;
#  - the row-level checks written as one SQL query with FILTER clauses, for scale.
# All with PostgreSQL's default parallel settings (two workers on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1}
rounds=${ROUNDS:-5}
db=pgp_bench_quality
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 10000000 * s}')

echo "== $rows interactions (the generator of bench/models.sh, with 60 days of timestamps); load: $(uptime | sed 's/.*load/load/')"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.42);
CREATE TABLE inter AS
SELECT floor(200000 * power(random(), 1.5))::bigint AS user_id,
       floor(50000 * power(random(), 2.5))::bigint AS item_id,
       1::real AS weight,
       timestamptz '2026-01-01' + random() * interval '60 days' AS occurred_at
FROM generate_series(1, $rows);
VACUUM ANALYZE inter;
SQL
psql -At -c "SELECT 'table: ' || pg_size_pretty(pg_table_size('inter'))"

# seconds of one statement (psql's \timing; the results are a few rows)
run() {
  psql -At -c "SET work_mem = '${2:-4MB}'" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{print $1 / 1000}'
}
declare -A query=(
  [count]="SELECT count(*) FROM inter"
  [rowlevel]="SELECT * FROM personalize.check_interactions('inter', '{\"as_of\": \"2026-03-02\", \"skip\": [\"duplicate_rows\", \"unseen_users\", \"unseen_items\"]}')"
  [sqlfilter]="SELECT count(*) FILTER (WHERE user_id IS NULL), count(*) FILTER (WHERE item_id IS NULL), count(*) FILTER (WHERE weight IS NULL),
               count(*) FILTER (WHERE weight < 0), count(*) FILTER (WHERE weight = 'NaN' OR weight = 'Infinity'),
               count(*) FILTER (WHERE occurred_at IS NULL), count(*) FILTER (WHERE occurred_at > '2026-03-02 00:05'),
               max(occurred_at), count(*) FILTER (WHERE occurred_at > '2026-03-01') FROM inter"
  [withdups]="SELECT * FROM personalize.check_interactions('inter', '{\"as_of\": \"2026-03-02\", \"skip\": [\"unseen_users\", \"unseen_items\"]}')"
  [groupby]="SELECT count(*) FROM (SELECT 1 FROM inter GROUP BY user_id, item_id, occurred_at HAVING count(*) > 1) d"
)
names="count rowlevel sqlfilter withdups groupby groupby1g"
declare -A times
for r in $(seq 1 "$rounds"); do
  for n in $names; do
    if [ "$n" = groupby1g ]; then t=$(run "${query[groupby]}" 1GB); else t=$(run "${query[$n]}"); fi
    times[$n]+="$t "
  done
done
declare -A med
for n in $names; do med[$n]=$(tr ' ' '\n' <<< "${times[$n]}" | grep . | median); done
groupby_best=$(awk -v a="${med[groupby]}" -v b="${med[groupby1g]}" 'BEGIN {print (a < b ? a : b)}')

echo
printf '%-62s | %-10s | %-22s | %s\n' "query ($rounds rounds)" "median s" "ratio" "bar"
printf '%-62s | %-10s | %-22s | %s\n' "count(*)" "${med[count]}" "1 (baseline)" ""
printf '%-62s | %-10s | %-22s | %s\n' "check_interactions, row-level checks in one pass" "${med[rowlevel]}" \
  "$(awk -v a="${med[rowlevel]}" -v b="${med[count]}" 'BEGIN {printf "%.2f x count(*)", a / b}')" "<= 2"
printf '%-62s | %-10s | %-22s | %s\n' "the same counts as one SQL query with FILTER" "${med[sqlfilter]}" \
  "$(awk -v a="${med[sqlfilter]}" -v b="${med[count]}" 'BEGIN {printf "%.2f x count(*)", a / b}')" ""
faster() { awk -v a="$1" -v b="$groupby_best" 'BEGIN {print (a == b ? "1 (baseline: the faster)" : "")}'; }
printf '%-62s | %-10s | %-22s | %s\n' "GROUP BY user, item, time HAVING count(*) > 1 (work_mem 4MB)" "${med[groupby]}" "$(faster "${med[groupby]}")" ""
printf '%-62s | %-10s | %-22s | %s\n' "GROUP BY user, item, time HAVING count(*) > 1 (work_mem 1GB)" "${med[groupby1g]}" "$(faster "${med[groupby1g]}")" ""
printf '%-62s | %-10s | %-22s | %s\n' "check_interactions with the duplicate check (and the rest)" "${med[withdups]}" \
  "$(awk -v a="${med[withdups]}" -v b="$groupby_best" 'BEGIN {printf "%.2f x GROUP BY", a / b}')" "<= 1.2"
echo
echo "all runs (s):"
for n in $names; do echo "  $n: ${times[$n]}"; done
