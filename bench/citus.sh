#!/usr/bin/env bash
# Scale-out on Citus: training where the rows are, and read-outs on shards,
# against the same work on the coordinator alone. Needs a Citus coordinator
# with workers and pg_personalize installed on every node (PG* variables point
# at the coordinator; e.g. eval "$(bash test/citus/cluster.sh start BASE)").
#
#   bash bench/citus.sh               # 10M interactions, 10M assignments
#   SCALE=0.1 bash bench/citus.sh     # a tenth
#   PARTS=25 bash bench/citus.sh      # only parts 2 and 5 (below)
#
# Prints, with the single-node baseline measured in the same run (median of
# RUNS, default 3):
#  1. MovieLens small (skipped without ../shared/data): ALS trained on the nodes
#     against single-node ALS on the same split, same seed: NDCG@10 of both and
#     the largest factor difference;
#  2. ALS (64 factors, 15 iterations) over the power-law set of bench/models.sh,
#     single-node (serial) and on the nodes: wall time, the coordinator backend's
#     peak private memory (RssAnon, sampled) and VmHWM, the largest node backend's,
#     against the size of the interactions (table, and the 20 bytes a row the
#     single-node trainer's state holds); the model alone (RUNS runs), then
#     personalize.train storing it (1 run);
#  3. experiment_results over 10M assignments: seconds, the figures compared with
#     a local copy (1e-12), and the plan's per-arm aggregation on the workers;
#  4. consent on shards: a multi-shard and a router query over a protected
#     distributed table against the same table unprotected, as an analyst;
#  5. logistic regression (train_classifier, 10 numbers and a text feature of
#     8 levels, 2M rows) from a distributed table against the same rows in a
#     local table on the coordinator: wall time, seconds a pass, and the largest
#     coefficient and standard error difference;
#  6. item-kNN (100 neighbours) over MovieLens small with the rating as weight
#     (skipped without ../shared/data): wall time of the fit (median of RUNS)
#     from a local table on the coordinator, from the distributed table with
#     its rows gathered (itemknn_fit), and on the nodes (itemknn_fit_distributed);
#     the bytes the nodes' answers carry (DEBUG1 of the rounds) against the
#     rows' 20 bytes; the largest similarity difference and the share of
#     neighbour positions that agree with the local model. Then the same
#     timings over 2M (x SCALE) power-law interactions of 100k users and 2,000
#     items, and whether the models are byte for byte equal.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1}
runs=${RUNS:-3}
parts=${PARTS:-12345}
db=${PGDATABASE:-postgres}
local_db=pgp_bench_citus_local
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
hwm_kb() { grep VmHWM "/proc/$1/status" 2>/dev/null | awk '{print $2}'; }

if [ -z "$(psql -At -c "SELECT 1 FROM pg_extension WHERE extname = 'citus'")" ]; then
  echo "bench/citus: the citus extension is not installed in $db, skipping"; exit 0
fi
workers=$(psql -At -c "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND shouldhaveshards")
echo "== Citus $(psql -At -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), $workers workers; load: $(uptime | sed 's/.*load/load/')"
psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_personalize" \
     -c "SELECT count(*) FROM personalize.distribute_catalog()" >/dev/null
# postmasters of the nodes on this machine, to sample their backends' peak RSS
node_pids=$(psql -At -c "SELECT string_agg(nodeport::text, ' ') FROM pg_dist_node WHERE shouldhaveshards")
sample_nodes() {  # writes the largest VmHWM (kB) of the worker backends started after it, until killed
  local best=0 parents="" pp since
  for port in $node_pids; do
    pp=$(ss -ltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    parents="$parents $pp"
  done
  since=$(awk '{print int($22)}' /proc/self/stat)   # clock ticks since boot: older backends are not this run's
  trap 'echo $best > "$1"; exit 0' TERM
  while true; do
    for pp in $parents; do
      for c in $(cat /proc/$pp/task/$pp/children 2>/dev/null); do
        [ "$(awk '{print int($22)}' /proc/$c/stat 2>/dev/null || echo 0)" -ge "$since" ] || continue
        h=$(hwm_kb "$c"); [ -n "$h" ] && [ "$h" -gt "$best" ] && best=$h
      done
    done
    sleep 0.2
  done
}

if [[ $parts == *1* ]]; then
# ---------------------------------------------------------------- 1. MovieLens small
data=${MOVIELENS:-../shared/data/movielens-small}
echo
if [ -f "$data/ratings.csv" ]; then
  data=$(cd "$data" && pwd)
  echo "== 1. MovieLens small (bench/validate_models.sh's split): ALS on the nodes against single-node ALS, same seed"
  psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS ml_ratings, ml_ranked, ml_train, ml_train_dist, ml_test;
CREATE TABLE ml_ratings (user_id bigint, item_id bigint, rating real, ts bigint);
\copy ml_ratings FROM '$data/ratings.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE ml_ranked AS
SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS pos,
       count(*) OVER (PARTITION BY user_id) AS n FROM ml_ratings WHERE rating >= 4;
CREATE TABLE ml_train AS SELECT user_id, item_id, 1::real AS weight FROM ml_ranked WHERE n < 5 OR pos <= floor(0.8 * n);
CREATE TABLE ml_test AS SELECT user_id, item_id FROM ml_ranked WHERE n >= 5 AND pos > floor(0.8 * n);
CREATE TABLE ml_train_dist (LIKE ml_train);
SELECT create_distributed_table('ml_train_dist', 'user_id');
INSERT INTO ml_train_dist SELECT * FROM ml_train;
SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models WHERE name LIKE 'ml_%') m;
SELECT personalize.train('ml_single', 'als', 'ml_train', '{"seed": 7}');
SELECT personalize.train('ml_nodes', 'als', 'ml_train_dist', '{"seed": 7}');
CREATE TEMP TABLE recs_single AS SELECT u.user_id, r.item_id, r.rank FROM (SELECT DISTINCT user_id FROM ml_test) u,
  LATERAL personalize.recommend('ml_single', u.user_id, 10) r;
CREATE TEMP TABLE recs_nodes AS SELECT u.user_id, r.item_id, r.rank FROM (SELECT DISTINCT user_id FROM ml_test) u,
  LATERAL personalize.recommend('ml_nodes', u.user_id, 10) r;
\pset format aligned
SELECT s.users, round(s.ndcg_at_k::numeric, 6) AS ndcg10_single, round(n.ndcg_at_k::numeric, 6) AS ndcg10_nodes,
       round(abs(s.ndcg_at_k - n.ndcg_at_k)::numeric, 6) AS ndcg_difference,
       (SELECT max(abs(x - y)) / max(abs(y)) FROM personalize.user_embeddings('ml_nodes') a
        JOIN personalize.user_embeddings('ml_single') b USING (id), LATERAL unnest(a.embedding::real[], b.embedding::real[]) v(x, y))
         AS user_factor_rel_diff,
       (SELECT max(abs(x - y)) / max(abs(y)) FROM personalize.item_embeddings('ml_nodes') a
        JOIN personalize.item_embeddings('ml_single') b USING (id), LATERAL unnest(a.embedding::real[], b.embedding::real[]) v(x, y))
         AS item_factor_rel_diff,
       (SELECT count(*) FROM recs_single JOIN recs_nodes USING (user_id, item_id, rank)) * 1.0 / (SELECT count(*) FROM recs_single)
         AS same_top10_positions
FROM personalize.ranking_metrics('recs_single', 'ml_test', 10) s, personalize.ranking_metrics('recs_nodes', 'ml_test', 10) n;
DROP TABLE ml_ratings, ml_ranked, ml_train, ml_train_dist, ml_test;
SQL
else
  echo "== 1. MovieLens small: $data/ratings.csv not found, skipped"
fi
fi

if [[ $parts == *2* ]]; then
# ---------------------------------------------------------------- 2. ALS at scale
users=$(awk -v s="$scale" 'BEGIN {printf "%d", 200000 * s}')
items=$(awk -v s="$scale" 'BEGIN {printf "%d", 50000 * (s < 1 ? 0.5 + s / 2 : 1)}')
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 10000000 * s}')
echo
echo "== 2. ALS, 64 factors, 15 iterations: $rows power-law interactions ($users users, $items items), $runs runs"
psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS inter, inter_dist;
SELECT setseed(0.42);
CREATE TABLE inter AS
SELECT floor($users * power(random(), 1.5))::bigint AS user_id,
       floor($items * power(random(), 2.5))::bigint AS item_id,
       1::real AS weight
FROM generate_series(1, $rows);
CREATE TABLE inter_dist (LIKE inter);
SELECT create_distributed_table('inter_dist', 'user_id');
INSERT INTO inter_dist SELECT * FROM inter;
ANALYZE inter; ANALYZE inter_dist;
SQL
table_mb=$(psql -At -c "SELECT round(pg_total_relation_size('inter') / 1048576.0)")
state_mb=$(awk -v r="$rows" 'BEGIN {printf "%d", r * 20 / 1048576}')
shards=$(psql -At -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'inter_dist'::regclass")
# One training in a fresh session: "seconds coordinator_anon_peak_kb coordinator_hwm_kb node_hwm_kb".
# The coordinator backend's private memory (RssAnon) is sampled every 0.2 s; VmHWM also
# counts the shared buffers it touched. $1: single|nodes, $2: fit (the model, not stored) | train
measure_once() {
  local f pidfile q; f=$(mktemp); pidfile=$(mktemp -u)
  if [ "$1" = single ]; then
    [ "$2" = fit ] && q="SELECT personalize.model_info(personalize.als_fit(user_id, item_id, weight, '{}')) - 'options' FROM inter" \
                   || q="SELECT personalize.train('bench_single', 'als', 'inter', '{}')"
  else
    [ "$2" = fit ] && q="SELECT personalize.model_info(personalize.als_fit_distributed('inter_dist', '{}')) - 'options'" \
                   || q="SELECT personalize.train('bench_nodes', 'als', 'inter_dist', '{}')"
  fi
  sample_nodes "$f" & local sampler=$!
  ( best=0; while [ ! -s "$pidfile" ]; do sleep 0.1; done; pid=$(cat "$pidfile")
    trap 'echo $best > "$pidfile.anon"; exit 0' TERM
    while [ -d /proc/$pid ]; do
      a=$(awk '/RssAnon/{print $2}' /proc/$pid/status 2>/dev/null); [ -n "$a" ] && [ "$a" -gt "$best" ] && best=$a
      sleep 0.2
    done; echo $best > "$pidfile.anon" ) & local csampler=$!
  local out
  out=$(psql -At -F ' ' <<SQL
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
SET citus.max_cached_conns_per_worker = 0;
COPY (SELECT pg_backend_pid()) TO '$pidfile';
SELECT pg_backend_pid() AS pid \gset
\timing on
$q;
\timing off
SELECT 'hwm', (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s+(\d+)'))[1];
SQL
)
  kill -TERM $sampler $csampler 2>/dev/null; wait $sampler $csampler 2>/dev/null || true
  psql -c "SET client_min_messages = warning" -c "SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models WHERE name LIKE 'bench_%') m" >/dev/null
  local secs; secs=$(grep -o 'Time: [0-9.]*' <<< "$out" | head -1 | awk '{printf "%.1f", $2 / 1000}')
  local hwm; hwm=$(awk '$1 == "hwm" {print $2}' <<< "$out")
  echo "$secs $(cat "$pidfile.anon" 2>/dev/null || echo 0) $hwm $(cat "$f")"; rm -f "$f" "$pidfile" "$pidfile.anon"
}
mb() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
med() { tr ' ' '\n' <<< "$1" | grep . | median; }
printf '%-44s | %-8s | %-22s | %-20s | %s\n' "ALS 64 factors, 15 iterations" "seconds" "coordinator private MB" "coordinator VmHWM MB" "largest node backend MB"
for what in fit train; do
  n=$([ $what = fit ] && echo "$runs" || echo 1)
  for kind in single nodes; do
    s=""; a=""; h=""; w=""
    for r in $(seq 1 "$n"); do
      read -r x y z v <<< "$(measure_once $kind $what)"
      s+="$x "; a+="$y "; h+="$z "; w+="$v "
    done
    label="$([ $kind = single ] && echo "single-node, serial" || echo "on the nodes ($shards shards)"), $([ $what = fit ] && echo "model only ($n runs)" || echo "train() storing it (1 run)")"
    printf '%-44s | %-8s | %-22s | %-20s | %s\n' "$label" "$(med "$s")" "$(mb "$(med "$a")")" "$(mb "$(med "$h")")" "$(mb "$(med "$w")")"
    [ $what = fit ] && eval "secs_$kind=\"$s\""
  done
done
echo "interactions: table $table_mb MB, single-node training state $state_mb MB (20 B a row); model only runs: $secs_single/ $secs_nodes s"
echo "time ratio nodes / single (model only): $(awk -v a="$(med "$secs_nodes")" -v b="$(med "$secs_single")" 'BEGIN {printf "%.2f", a / b}')"
psql -c "DROP TABLE inter, inter_dist"
fi

if [[ $parts == *3* ]]; then
# ---------------------------------------------------------------- 3. experiment_results on shards
units=$rows
echo
echo "== 3. experiment_results over $units distributed assignments against a local copy, $runs runs"
dropdb --if-exists "$local_db" >/dev/null 2>&1
createdb "$local_db" 2>/dev/null
trap 'dropdb --if-exists "$local_db" >/dev/null 2>&1' EXIT
for target in "$db" "$local_db"; do
  psql -d "$target" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_personalize;
DELETE FROM personalize.experiments WHERE name = 'big';
SELECT personalize.create_experiment('big', '{control,b,c}', '{2,1,1}');
INSERT INTO personalize.assignments (experiment, unit_id, arm)
SELECT 'big', u, (ARRAY['control', 'control', 'b', 'c'])[1 + u % 4] FROM generate_series(1, $units) u;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'big', u, 'revenue', (('x' || substr(md5(u::text), 1, 8))::bit(32)::bigint % 10000) / 100.0
FROM generate_series(1, $units, 4) u;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'big', u, 'conversion', 1 FROM generate_series(1, $units, 9) u;
ANALYZE personalize.assignments; ANALYZE personalize.outcomes;
SQL
done
time_readout() {  # $1 db -> seconds
  psql -d "$1" -At <<'SQL' | grep -o 'Time: [0-9.]*' | awk '{printf "%.2f\n", $2 / 1000}'
\timing on
SELECT count(*) FROM personalize.experiment_results WHERE experiment = 'big';
SQL
}
for target in "$db" "$local_db"; do
  for r in $(seq 1 "$runs"); do time_readout "$target"; done | median > "/tmp/pgp_readout_$target"
done
psql -At -F $'\t' -d "$db" -c "SELECT * FROM personalize.experiment_results WHERE experiment = 'big' ORDER BY metric, arm" > /tmp/pgp_big_citus.tsv
psql -At -F $'\t' -d "$local_db" -c "SELECT * FROM personalize.experiment_results WHERE experiment = 'big' ORDER BY metric, arm" > /tmp/pgp_big_local.tsv
same=$(/usr/bin/python3 - /tmp/pgp_big_citus.tsv /tmp/pgp_big_local.tsv <<'PY'
import re, sys
a = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
b = [l.rstrip('\n').split('\t') for l in open(sys.argv[2])]
worst = 0.0
ok = len(a) == len(b) and len(a) > 0
for ra, rb in zip(a, b):
    for x, y in zip(ra, rb):
        if x == y:
            continue
        try:
            p, q = float(x), float(y)
        except ValueError:
            ok = False; continue
        worst = max(worst, abs(p - q) / max(abs(q), 1e-300))
print(f"{'same' if ok and worst <= 1e-12 else 'DIFFERENT'} ({len(a)} rows, largest relative difference {worst:.1e})")
PY
)
printf '%-22s | %s\n' "experiment_results" "seconds"
printf '%-22s | %s\n' "local (coordinator)" "$(cat /tmp/pgp_readout_$local_db)"
printf '%-22s | %s\n' "distributed ($(psql -At -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'personalize.assignments'::regclass") shards)" "$(cat /tmp/pgp_readout_$db)"
echo "figures: $same"
echo "plan (the per-arm aggregation inside each shard task):"
psql -At -c "EXPLAIN (COSTS OFF) SELECT * FROM personalize.experiment_results WHERE experiment = 'big'" \
  | grep -E 'Distributed Subplan|Task Count|Node: host|GroupAggregate|Group Key: a.experiment, o.metric, a.arm|Seq Scan on (outcomes|assignments)_' | head -8
psql -c "DELETE FROM personalize.experiments WHERE name = 'big'"
rm -f /tmp/pgp_readout_* /tmp/pgp_big_*.tsv
fi

if [[ $parts == *4* ]]; then
# ---------------------------------------------------------------- 4. consent on shards
subjects=$(awk -v s="$scale" 'BEGIN {printf "%d", 100000 * s}')
echo
echo "== 4. consent on shards: $rows rows of $subjects subjects (2/3 consenting), read by a role without the exemption, $runs runs"
psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS ev_plain, ev_protected;
DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_analyst') THEN CREATE ROLE bench_analyst LOGIN; END IF; END \$\$;
CREATE TABLE ev_plain AS SELECT (g % $subjects) + 1 AS customer_id, g % 1000 AS item_id, 1::real AS weight FROM generate_series(1, $rows) g;
CREATE TABLE ev_protected (LIKE ev_plain);
SELECT create_distributed_table('ev_plain', 'customer_id');
SELECT create_distributed_table('ev_protected', 'customer_id', colocate_with => 'ev_plain');
INSERT INTO ev_protected SELECT * FROM ev_plain;
INSERT INTO personalize.consents (subject_id, purpose, granted) SELECT s, 'bench', s % 3 <> 0 FROM generate_series(1, $subjects) s;
SELECT personalize.protect('ev_protected', 'customer_id', 'bench');
GRANT USAGE ON SCHEMA personalize TO bench_analyst;
GRANT SELECT ON personalize.consent_state, ev_plain, ev_protected TO bench_analyst;
ANALYZE ev_plain; ANALYZE ev_protected;
SQL
time_q() {  # $1 query -> seconds (as bench_analyst)
  psql -At <<SQL | grep -o 'Time: [0-9.]*' | awk '{printf "%.4f\n", $2 / 1000}'
SET ROLE bench_analyst;
\timing on
$1;
SQL
}
printf '%-34s | %-12s | %-12s | %s\n' query unprotected protected ratio
for q in "SELECT count(*) FROM %s" "SELECT sum(weight) FROM %s WHERE customer_id = 7"; do
  a=$(for r in $(seq 1 "$runs"); do time_q "$(printf "$q" ev_plain)"; done | median)
  b=$(for r in $(seq 1 "$runs"); do time_q "$(printf "$q" ev_protected)"; done | median)
  printf '%-34s | %-12s | %-12s | %s\n' "$(printf "$q" t | cut -c1-34)" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
done
echo "rows seen by the analyst: $(psql -At -c "SET ROLE bench_analyst" -c "SELECT count(*) FROM ev_protected") of $rows"
psql -c "SET client_min_messages = warning" -c "SELECT personalize.unprotect('ev_protected')" -c "DROP TABLE ev_plain, ev_protected" >/dev/null
fi


if [[ $parts == *5* ]]; then
# ---------------------------------------------------------------- 5. logistic regression
lrows=$(awk -v s="$scale" 'BEGIN {printf "%d", 2000000 * s}')
echo
echo "== 5. train_classifier over $lrows rows (10 float8, a text of 8 levels): distributed against local on the coordinator, $runs runs"
numbers=$(seq -s, 1 10 | sed 's/[0-9]\+/f&/g')
psql >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS lr_local, lr_dist;
SELECT setseed(0.3);
CREATE TABLE lr_local AS
SELECT s.*, random() < 1 / (1 + exp(0.5 - ($(for i in $(seq 1 10); do printf '(%s / 10.0 - 0.5) * f%d + ' "$i" "$i"; done) 0))) AS label
FROM (SELECT g AS customer_id, $(for i in $(seq 1 10); do printf 'random() * 2 - 1 AS f%d, ' "$i"; done) 'level' || (random() * 7)::int AS seg
      FROM generate_series(1, $lrows) g) s;
CREATE TABLE lr_dist (LIKE lr_local);
SELECT create_distributed_table('lr_dist', 'customer_id');
INSERT INTO lr_dist SELECT * FROM lr_local;
ANALYZE lr_local; ANALYZE lr_dist;
SQL
train_lr() {  # $1 model, $2 table -> "seconds seconds-a-pass"
  local log
  log=$(psql -c '\timing on' -c "SELECT personalize.train_classifier('$1', '$2', 'label', '{$numbers,seg}', '{\"verbose\": true}')" 2>&1)
  echo "$(awk '/^Time:/ {printf "%.2f", $2 / 1000}' <<< "$log") $(grep -o 'pass [0-9.]* s' <<< "$log" | awk '{print $2}' | median)"
}
for r in $(seq 1 "$runs"); do train_lr lr_local lr_local; done > /tmp/pgp_lr_local
for r in $(seq 1 "$runs"); do train_lr lr_dist lr_dist; done > /tmp/pgp_lr_dist
printf '%-26s | %-10s | %s\n' "$lrows rows from" "seconds" "seconds a pass (median of the passes of the median run)"
for t in local dist; do
  printf '%-26s | %-10s | %s\n' "$t" "$(awk '{print $1}' /tmp/pgp_lr_$t | median)" "$(sort -g /tmp/pgp_lr_$t | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')"
done
echo "time ratio distributed / local: $(awk -v a="$(awk '{print $1}' /tmp/pgp_lr_dist | median)" -v b="$(awk '{print $1}' /tmp/pgp_lr_local | median)" 'BEGIN {printf "%.2f", a / b}')"
psql -At -c "SELECT 'largest relative difference of coefficients and standard errors: ' ||
  max(greatest(abs(a.coefficient - b.coefficient) / abs(b.coefficient), abs(a.std_error - b.std_error) / b.std_error))
  FROM personalize.coefficients('lr_dist') a JOIN personalize.coefficients('lr_local') b USING (term)"
psql -c "SET client_min_messages = warning" -c "DROP TABLE lr_local, lr_dist" \
     -c "SELECT count(personalize.drop_model(name)) FROM (VALUES ('lr_local'), ('lr_dist')) m(name)" >/dev/null
rm -f /tmp/pgp_lr_*
fi

if [[ $parts == *6* ]]; then
# ---------------------------------------------------------------- 6. item-kNN on the nodes
time_fit() {  # seconds of one fit in a fresh session
  psql -At -c "SET client_min_messages = warning" -c "DO \$\$ DECLARE t timestamptz := clock_timestamp(); m personalize.model; BEGIN
    $1; RAISE WARNING 'seconds %', extract(epoch FROM clock_timestamp() - t); END \$\$" 2>&1 | sed -n 's/.*seconds //p'
}
data=${MOVIELENS:-../shared/data/movielens-small}
echo
if [ -f "$data/ratings.csv" ]; then
  data=$(cd "$data" && pwd)
  echo "== 6. item-kNN, 100 neighbours, MovieLens small (rating as weight): rows gathered on the coordinator against the nodes, $runs runs"
  psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS knn_ratings, knn_dist;
CREATE TABLE knn_ratings (user_id bigint, item_id bigint, weight real, ts bigint);
\copy knn_ratings FROM '$data/ratings.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE knn_dist (LIKE knn_ratings);
SELECT create_distributed_table('knn_dist', 'user_id');
INSERT INTO knn_dist SELECT * FROM knn_ratings;
SELECT count(personalize.drop_model(name)) FROM (VALUES ('knn_local'), ('knn_nodes')) m(name)
WHERE EXISTS (SELECT FROM personalize.models WHERE models.name = m.name);
SQL
  local_s=$(for r in $(seq "$runs"); do time_fit "SELECT personalize.itemknn_fit(user_id, item_id, weight, '{}') INTO m FROM knn_ratings"; done | median)
  gathered=$(for r in $(seq "$runs"); do time_fit "SELECT personalize.itemknn_fit(user_id, item_id, weight, '{}') INTO m FROM knn_dist"; done | median)
  nodes=$(for r in $(seq "$runs"); do time_fit "m := personalize.itemknn_fit_distributed('knn_dist', '{}')"; done | median)
  answer_bytes=$(psql -At -c "SET client_min_messages = debug1" -c "SELECT personalize.itemknn_fit_distributed('knn_dist', '{}') IS NOT NULL" 2>&1 \
    | sed -n 's/.*training round [0-9]*: .* s, \([0-9]*\) bytes received.*/\1/p' | awk '{s += $1} END {print s + 0}')
  psql -c "SET client_min_messages = warning" \
       -c "SELECT personalize.train('knn_local', 'itemknn', 'knn_ratings')" -c "SELECT personalize.train('knn_nodes', 'itemknn', 'knn_dist')" >/dev/null
  psql <<SQL
\pset format aligned
SELECT $local_s AS local_table_s, $gathered AS gathered_s, $nodes AS nodes_s, round($nodes / $gathered, 2) AS nodes_over_gathered,
       round($answer_bytes / 1048576.0, 1) AS nodes_answers_mb, round((SELECT count(*) FROM knn_ratings) * 20 / 1048576.0, 1) AS rows_mb,
       max(abs(a.score - b.score) / b.score) AS similarity_rel_diff,
       round(avg((a.item_id = b.item_id)::int), 4) AS same_neighbour_positions
FROM (SELECT DISTINCT item_id FROM knn_ratings) i,
     LATERAL personalize.similar_items('knn_nodes', i.item_id, 100) a
     JOIN LATERAL personalize.similar_items('knn_local', i.item_id, 100) b USING (rank);
SET client_min_messages = warning;
SELECT count(personalize.drop_model(name)) FROM (VALUES ('knn_local'), ('knn_nodes')) m(name);
DROP TABLE knn_ratings, knn_dist;
SQL
else
  echo "== 6. MovieLens small: $data/ratings.csv not found, skipped"
fi
knn_rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 2000000 * s}')
echo "== 6. item-kNN, 100 neighbours, $knn_rows power-law interactions (100,000 users, 2,000 items): gathered against the nodes, $runs runs"
psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS knn_ratings, knn_dist;
SELECT setseed(0.42);
CREATE TABLE knn_ratings AS SELECT floor(100000 * power(random(), 1.5))::bigint AS user_id,
       floor(2000 * power(random(), 2.5))::bigint AS item_id, 1::real AS weight FROM generate_series(1, $knn_rows);
CREATE TABLE knn_dist (LIKE knn_ratings);
SELECT create_distributed_table('knn_dist', 'user_id');
INSERT INTO knn_dist SELECT * FROM knn_ratings;
SQL
local_s=$(for r in $(seq "$runs"); do time_fit "SELECT personalize.itemknn_fit(user_id, item_id, weight, '{}') INTO m FROM knn_ratings"; done | median)
gathered=$(for r in $(seq "$runs"); do time_fit "SELECT personalize.itemknn_fit(user_id, item_id, weight, '{}') INTO m FROM knn_dist"; done | median)
nodes=$(for r in $(seq "$runs"); do time_fit "m := personalize.itemknn_fit_distributed('knn_dist', '{}')"; done | median)
answer_bytes=$(psql -At -c "SET client_min_messages = debug1" -c "SELECT personalize.itemknn_fit_distributed('knn_dist', '{}') IS NOT NULL" 2>&1 \
  | sed -n 's/.*training round [0-9]*: .* s, \([0-9]*\) bytes received.*/\1/p' | awk '{s += $1} END {print s + 0}')
psql <<SQL
\pset format aligned
SELECT $local_s AS local_table_s, $gathered AS gathered_s, $nodes AS nodes_s, round($nodes / $gathered, 2) AS nodes_over_gathered,
       round($answer_bytes / 1048576.0, 1) AS nodes_answers_mb, round((SELECT count(*) FROM knn_ratings) * 20 / 1048576.0, 1) AS rows_mb,
       personalize.itemknn_fit_distributed('knn_dist', '{}')::text
         = (SELECT personalize.itemknn_fit(user_id, item_id, weight, '{}')::text FROM knn_ratings) AS byte_equal;
DROP TABLE knn_ratings, knn_dist;
SQL
fi
