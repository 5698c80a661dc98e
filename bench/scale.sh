#!/usr/bin/env bash
# Models at the scale of a real customer base (issue 10): train, memory, serving
# with many connections, activation under load, batch scoring. Needs a cluster
# with the extension installed and pg_personalize in shared_preload_libraries
# (PG* variables), run as a role that may read /proc of the server (root or the
# server's user) and a superuser database role (pg_read_file).
#
#   bash bench/scale.sh                    # 5M users, 200k items, 50M interactions
#                                          #   (~14 GB RAM, ~10 GB disk, ~40 min)
#   SCALE=0.1 bash bench/scale.sh          # a tenth
#   STEPS="serve activate" bash bench/scale.sh   # some steps (data is kept)
#
# The scale set comes from the generator of bench/models.sh with every count
# scaled (power-law item popularity), generated once into database $DATA_DB and
# kept; so is the 10M set of bench/models.sh (per-row comparison, batch scoring).
# The baseline is implicit 0.6.2 built from source outside the repository
# (IMPLICIT_DIR, default /work/peers/implicit), fed the same rows by a binary
# COPY and writing its factors back the same way (bench/scale_implicit.py).
# Prints one table at the end; every baseline and bound is measured in the run.
# The whole run holds /work/tools/bench.lock (flock) when that file exists.
set -euo pipefail
cd "$(dirname "$0")/.."
# every step is heavy: the whole run holds the machine's benchmark lock
if [ -z "${SCALE_LOCK_HELD:-}" ] && [ -e /work/tools/bench.lock ]; then
  exec env SCALE_LOCK_HELD=1 flock /work/tools/bench.lock bash "$0" "$@"
fi
scale=${SCALE:-1}
db=${DATA_DB:-pgp_scale}
steps=${STEPS:-"data train implicit serve activate batch"}
implicit_dir=${IMPLICIT_DIR:-/work/peers/implicit}
seconds=${SECONDS_PER_RUN:-20}
users=$(awk -v s="$scale" 'BEGIN {printf "%d", 5000000 * s}')
items=$(awk -v s="$scale" 'BEGIN {printf "%d", 200000 * s}')
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 50000000 * s}')
s10=$(awk -v s="$scale" 'BEGIN {print (s < 1 ? s : 1)}')   # the 10M set, scaled down only for trials
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
row() { printf '%-62s | %-22s | %s\n' "$1" "$2" "$3" >>"$out/table"; echo "  $1: $2 ($3)"; }
has() { [[ " $steps " == *" $1 "* ]]; }
: >"$out/table"
echo "load before: $(uptime)"

# ---------- data ----------
createdb "$db" 2>/dev/null || true
psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_personalize"
if has data; then
  if [ "$(psql -At -c "SELECT to_regclass('inter') IS NULL")" = t ]; then
    echo "== generating $users users, $items items, $rows interactions"
    psql -c "SELECT setseed(0.42)" -c "CREATE TABLE inter AS
      SELECT floor($users * power(random(), 1.5))::bigint AS user_id,
             floor($items * power(random(), 2.5))::bigint AS item_id, 1::real AS weight
      FROM generate_series(1, $rows)" -c "ANALYZE inter"
  fi
  if [ "$(psql -At -c "SELECT to_regclass('inter10') IS NULL")" = t ]; then
    echo "== generating the 10M set of bench/models.sh"
    psql -c "SELECT setseed(0.42)" -c "CREATE TABLE inter10 AS
      SELECT floor(200000 * $s10 * power(random(), 1.5))::bigint AS user_id,
             floor(50000 * power(random(), 2.5))::bigint AS item_id, 1::real AS weight
      FROM generate_series(1, 10000000 * $s10)" -c "ANALYZE inter10"
  fi
fi
# users and items of the scale set: from its model once trained
counts() { psql -At -F ' ' -c "SELECT users, items FROM personalize.models WHERE name = 'scale' AND active"; }

# ---------- train: end to end, peak memory, per row against the 10M set ----------
# train $table $name -> "wall_seconds peak_rss_kB iteration_median"
train() {
  local start end stats
  start=$(date +%s.%N)
  stats=$(psql -At -F ' ' -c "SET client_min_messages = debug1" \
    -c "SELECT personalize.train('$2', 'als', '$1', '{\"factors\": 64, \"iterations\": 15}')" \
    -c "SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')" 2>"$out/train_$2.log" | tail -1)
  end=$(date +%s.%N)
  echo "$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') $stats $(grep -o 'iteration [0-9]* of 15: [0-9.]* s' "$out/train_$2.log" | awk '{print $5}' | median)"
}
if has train; then
  echo "== train ALS, 64 factors, 15 iterations"
  psql -c "SET client_min_messages = warning" -c "SELECT personalize.drop_model(name) FROM (SELECT DISTINCT name FROM personalize.models WHERE name IN ('scale', 'scale10')) n"
  read -r t10 rss10 it10 <<<"$(train inter10 scale10)"
  read -r t50 rss50 it50 <<<"$(train inter scale)"
  read -r nusers nitems <<<"$(counts)"
  echo "scale set: $nusers users, $nitems items, $rows rows"
  factor_bytes=$(( (nusers + nitems) * 64 * 4 ))
  budget_kb=$(( (40 * rows + factor_bytes + 512 * 1024 * 1024) / 1024 ))
  row "train() 50M, 64 factors, 15 iterations, wall" "${t50} s" "bar <= 240 s"
  row "ALS s/iteration 50M / 10M (median)" "$it50 / $it10" "iterations of the two runs"
  row "train() seconds per million rows, 50M vs 10M" \
      "$(awk -v a="$t50" -v r="$rows" 'BEGIN {printf "%.2f", a / r * 1e6}') vs $(awk -v a="$t10" -v s="$s10" 'BEGIN {printf "%.2f", a / (10 * s)}')" "bar: 50M not slower per row"
  row "peak backend RSS while training 50M (VmHWM)" "$(( rss50 / 1024 )) MB" \
      "bar <= 40 B x rows + factors + 512 MB = $(( budget_kb / 1024 )) MB"
  row "model bytes (stored in chunks)" "$(psql -At -c "SELECT pg_size_pretty(bytes) FROM personalize.models WHERE name = 'scale' AND active")" "no 1 GB limit"
fi

# ---------- implicit 0.6.2, side by side ----------
if has implicit; then
  echo "== implicit 0.6.2: export, fit (2 threads), write the factors back"
  start=$(date +%s.%N)
  bash -c "
    command psql -X -d $db -c 'COPY (SELECT user_id, item_id, weight FROM inter) TO STDOUT (FORMAT binary)' |
      IMPLICIT_DIR=$implicit_dir /usr/bin/python3 bench/scale_implicit.py 64 15 2 $out >$out/implicit.log
    command psql -X -q -d $db -v ON_ERROR_STOP=1 -c 'DROP TABLE IF EXISTS implicit_users, implicit_items' \
      -c 'CREATE TABLE implicit_users (id bigint, factors real[])' -c 'CREATE TABLE implicit_items (id bigint, factors real[])' \
      -c \"\\copy implicit_users FROM '$out/user_factors.copy' (FORMAT binary)\" \
      -c \"\\copy implicit_items FROM '$out/item_factors.copy' (FORMAT binary)\""
  end=$(date +%s.%N)
  timp=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  row "implicit end to end (export + fit + write back)" "$timp s" "$(tr '\n' ' ' <"$out/implicit.log")"
  [ -n "${t50:-}" ] && row "implicit / ours, end to end" "$(awk -v a="$timp" -v b="$t50" 'BEGIN {printf "%.2f", a / b}')" "bar >= 2"
fi

# ---------- serving ----------
bandwidth() {  # GB/s of sequential reads: one core, and both cores at once
  cc -O2 -o "$out/membw" bench/membw.c
  one=$("$out/membw" 1024 2>/dev/null)
  "$out/membw" 1024 >"$out/bw1" 2>/dev/null & "$out/membw" 1024 >"$out/bw2" 2>/dev/null; wait
  echo "$one $(awk '{s += $1} END {printf "%.2f", s}' "$out/bw1" "$out/bw2")"
}
# latency script -c -T -> "p50 p95 max tps failed" in ms, from pgbench's per-transaction log
pgb() {
  local dir; dir=$(mktemp -d)
  (cd "$dir" && command pgbench -n -c "$2" -j "$2" -T "$3" -f "$1" -l "$db" >"$dir/summary" 2>&1) || true
  cat "$dir"/pgbench_log.* | awk '{print $3 / 1000}' | sort -g |
    awk -v t="$3" -v f="$(grep -o 'failed: [0-9]*' "$dir/summary" | grep -o '[0-9]*' || echo 0)" \
      '{a[NR]=$1} END {printf "%.3f %.3f %.1f %.0f %d\n", a[int(NR*0.5)+1], a[int(NR*0.95)+1], a[NR], NR / t, f}'
  rm -rf "$dir"
}
cat >"$out/rec.sql" <<SQL
\set uid random(0, $users - 1)
SELECT * FROM personalize.recommend('scale', :uid, 10);
SQL
[ -n "${nitems:-}" ] || read -r nusers nitems <<<"$(counts)"
if has serve; then
  echo "== serving the scale model (200k items x 64 factors): latency, throughput, memory of 32 connections"
  read -r bw1 bw2 <<<"$(bandwidth)"
  mb_per_request=$(awk -v i="$nitems" 'BEGIN {printf "%.1f", i * 64 * 4 / 1e6}')
  command pgbench -n -c 4 -t 50 -f "$out/rec.sql" "$db" >/dev/null 2>&1   # first load
  read -r p50 p95 pmax tps1 f1 <<<"$(PGOPTIONS="-c personalize.exact_scoring=off" pgb "$out/rec.sql" 1 "$seconds")"
  read -r q50 q95 qmax tps4 f4 <<<"$(PGOPTIONS="-c personalize.exact_scoring=off" pgb "$out/rec.sql" 4 "$seconds")"
  read -r e50 e95 emax etps1 ef1 <<<"$(PGOPTIONS="-c personalize.exact_scoring=on" pgb "$out/rec.sql" 1 "$seconds")"
  read -r g50 g95 gmax etps4 ef4 <<<"$(PGOPTIONS="-c personalize.exact_scoring=on" pgb "$out/rec.sql" 4 "$seconds")"
  # the bound of the issue: bytes of scoring every item (float4, 64 floats each) over the
  # bandwidth. Both paths scan items by descending norm and stop at the Cauchy-Schwarz
  # bound, so they read a fraction of those bytes; the default scores in float4 (sgemv
  # over every item for a model whose norms do not prune), exact_scoring = off in bfloat16
  mb_half=$(awk -v i="$nitems" 'BEGIN {printf "%.1f", i * (64 * 2 + 4) / 1e6}')
  row "recommend p50 / p95, 1 client, $nitems items (default: float4 by norm)" "$e50 / $e95 ms" \
      "bars 3 / 10 ms; memory bound of scoring every item, 1 core ($bw1 GB/s): float4 $(awk -v b="$bw1" -v m="$mb_per_request" 'BEGIN {printf "%.2f", m / b}') ms ($mb_per_request MB), bfloat16 $(awk -v b="$bw1" -v m="$mb_half" 'BEGIN {printf "%.2f", m / b}') ms"
  row "recommend p50 / p95, 1 client (exact_scoring = off: bfloat16 by norm, exact re-rank)" "$p50 / $p95 ms" ""
  bound4=$(awk -v b="$bw2" -v m="$mb_half" 'BEGIN {printf "%.0f", b * 1000 / m}')
  ebound4=$(awk -v b="$bw2" -v m="$mb_per_request" 'BEGIN {printf "%.0f", b * 1000 / m}')
  row "recommend throughput, 4 clients (default)" "$etps4 /s ($(awk -v t="$etps4" -v b="$ebound4" 'BEGIN {printf "%.0f%%", 100 * t / b}') of the bound)" \
      "bound $ebound4 /s = $bw2 GB/s (2 cores) / $mb_per_request MB (every item in float4); bar >= 70%"
  row "recommend throughput, 4 clients (exact_scoring = off)" "$tps4 /s ($(awk -v t="$tps4" -v b="$ebound4" 'BEGIN {printf "%.0f%%", 100 * t / b}') of the float4 bound)" \
      "of every item in bfloat16: $bound4 /s"
  agree=$(psql -At -c "SET personalize.exact_scoring = off" -c "SELECT setseed(0.5)" -c "CREATE TEMP TABLE probe AS SELECT floor(random() * $users)::bigint AS u FROM generate_series(1, 1000)" \
    -c "CREATE TEMP TABLE approx AS SELECT p.u, array_agg(r.item_id ORDER BY r.rank) AS items, array_agg(r.score ORDER BY r.rank) AS scores
        FROM probe p, LATERAL personalize.recommend('scale', p.u, 10) r GROUP BY p.u" \
    -c "SET personalize.exact_scoring = on" \
    -c "SELECT count(*) FILTER (WHERE a.items = e.items OR a.scores = e.scores) || ' of ' || count(*)
        FROM approx a JOIN (SELECT p.u, array_agg(r.item_id ORDER BY r.rank) AS items, array_agg(r.score ORDER BY r.rank) AS scores
                            FROM probe p, LATERAL personalize.recommend('scale', p.u, 10) r GROUP BY p.u) e USING (u)" | tail -1)
  row "reduced-precision top 10 equal to the exact one" "$agree requests" "bar >= 99.9% (equal scores in another order count as equal: float ties)"
  # 32 connections: private memory of each serving backend, from /proc/<pid>/smaps:
  # pages of mappings not shared (no "sh" flag); the shared copy counted once
  command pgbench -n -c 32 -j 4 -T "$seconds" -f "$out/rec.sql" "$db" >"$out/pgb32" 2>&1 &
  sleep $(( seconds * 2 / 3 ))
  pids=$(psql -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = current_database()")
  for p in $pids; do
    # VmFlags ends each mapping's entry: count its private pages once the flags are known
    awk '/^[0-9a-f]+-[0-9a-f]+ / {cur = 0} /^Private_(Clean|Dirty):/ {cur += $2} /^VmFlags:/ {if ($0 !~ / sh/) priv += cur} END {print priv + 0}' "/proc/$p/smaps" 2>/dev/null || true
  done >"$out/private_kb"
  wait
  n32=$(wc -l <"$out/private_kb")
  shared_mb=$(psql -At -c "SELECT round(sum(bytes) / 1048576.0) FROM personalize.model_cache() WHERE name = 'scale' AND shared")
  row "32 connections: private memory, sum / max per backend" \
      "$(awk '{s += $1; if ($1 > m) m = $1} END {printf "%.0f / %.1f MB", s / 1024, m / 1024}' "$out/private_kb")" \
      "$n32 backends; bar <= 32 x 16 MB (+ one shared copy: $shared_mb MB)"
  row "32 connections: failed transactions" "$(grep -o 'failed: [0-9]*' "$out/pgb32" | grep -o '[0-9]*' || echo 0)" "$(grep -o 'tps = [0-9.]*' "$out/pgb32" | head -1)"
fi

# ---------- activation under load ----------
if has activate; then
  echo "== training and activating a new version while 4 clients serve"
  probe_user=$(psql -At -c "SELECT user_id FROM inter LIMIT 1")
  probe="SELECT md5(string_agg(item_id || ':' || score, ',' ORDER BY rank)) FROM personalize.recommend('scale', $probe_user, 10)"
  old=$(psql -At -c "$probe")
  # 4 clients serve in runs of 5 s (each logs every request) until the training has
  # committed and $seconds more have passed; a fifth client records which version
  # answers, with the time of each answer
  : >"$out/training"
  ( while [ -e "$out/training" ] || [ "$(date +%s)" -lt "$(cat "$out/until" 2>/dev/null || echo 0)" ]; do
      (cd "$out" && command pgbench -n -c 4 -j 4 -T 5 -f "$out/rec.sql" -l "$db" >>"$out/pgb_act" 2>&1) || echo "pgbench failed" >>"$out/pgb_act"
    done ) &
  bench=$!
  ( while [ -e "$out/training" ] || [ "$(date +%s)" -lt "$(cat "$out/until" 2>/dev/null || echo 0)" ]; do
      command psql -X -At -d "$db" -c "SELECT extract(epoch FROM clock_timestamp()), ($probe)" 2>&1; sleep 0.05; done ) >"$out/probe.log" &
  prober=$!
  sleep "$seconds"
  command psql -X -q -d "$db" -c "SET client_min_messages = warning" \
    -c "SELECT personalize.train('scale', 'als', 'inter', '{\"factors\": 64, \"iterations\": 1, \"seed\": 7}')" >/dev/null
  committed=$(date +%s.%N)
  echo $(( $(date +%s) + seconds )) >"$out/until"
  rm -f "$out/training"
  new=$(psql -At -c "$probe")
  wait "$bench" || true; wait "$prober" || true
  read -r a50 a95 amax atps afail <<<"$(cat "$out"/pgbench_log.* | awk '{print $3 / 1000}' | sort -g |
    awk -v f="$(grep -o 'failed: [0-9]*' "$out/pgb_act" | grep -o '[0-9]*' | awk '{s += $1} END {print s + 0}')" \
        -v g="$(grep -c 'pgbench failed\|ERROR' "$out/pgb_act" || true)" \
        '{a[NR]=$1} END {printf "%.3f %.3f %.1f %d %d\n", a[int(NR*0.5)+1], a[int(NR*0.95)+1], a[NR], NR, f + g}')"
  after=$(awk -v t="$committed" -F '|' '$1 > t' "$out/probe.log" | wc -l)
  stale=$(awk -v t="$committed" -v n="$new" -F '|' '$1 > t && $2 != n' "$out/probe.log" | wc -l)
  row "while training + activating: requests, failed, max latency" "$atps, $afail, $amax ms" "bars: 0 failed, max <= 100 ms (p50 $a50, p95 $a95 ms)"
  row "answers after the activation committed, by the old version" "$stale of $after" "bar: 0 (new version differs: $([ "$old" != "$new" ] && echo yes || echo no))"
  rm -f "$out"/pgbench_log.*
fi

# ---------- recommend_all at 50,000 items x 64 factors ----------
if has batch; then
  echo "== recommend_all, the 10M set's model (50,000 items x 64 factors)"
  if [ "$(psql -At -c "SELECT count(*) FROM personalize.models WHERE name = 'scale10'")" = 0 ]; then
    psql -c "SET client_min_messages = warning" -c "SELECT personalize.train('scale10', 'als', 'inter10', '{\"factors\": 64, \"iterations\": 15}')" >/dev/null
  fi
  read -r u i <<<"$(psql -At -F ' ' -c "SELECT users, items FROM personalize.models WHERE name = 'scale10' AND active")"
  # the bound, run between our runs: sgemm alone on the same shapes (two threads,
  # blocks of 256 users x tiles of 256 items, 20,000 users), and the GFLOP/s of a
  # square 2048^3 sgemm on both cores
  cc -O2 -o "$out/sgemm_bound" bench/sgemm_bound.c -lopenblas -lpthread
  for r in 1 2 3; do
    "$out/sgemm_bound" 20000 "$i" 64 256 256 1 >>"$out/bound"
    start=$(date +%s.%N)
    psql -At -c "SET client_min_messages = debug1" -c "SELECT count(*) FROM personalize.recommend_all('scale10', 10)" 2>"$out/ra_debug" >/dev/null
    end=$(date +%s.%N)
    grep -o 'user-item pairs ([0-9.]*%)' "$out/ra_debug" | grep -o '[0-9.]*%' >"$out/ra_scored"
    awk -v a="$start" -v b="$end" -v u="$u" 'BEGIN {printf "%.0f\n", u / (b - a)}' >>"$out/ra"
  done
  ra=$(median <"$out/ra")
  bound=$(awk '{print $1}' "$out/bound" | median)
  sgemm=$(awk '{print $2}' "$out/bound" | median)
  # exact pruning (items by descending norm, a user stops at the Cauchy-Schwarz bound):
  # the dense sgemm over every pair is the baseline, not a bound
  row "recommend_all users/s, $i items x 64 factors, k = 10" "$ra ($(awk -v a="$ra" -v b="$bound" 'BEGIN {printf "%.1f", a / b}')x dense sgemm)" \
      "bar >= 25,000; scored $(cat "$out/ra_scored") of the pairs; sgemm alone over every pair, same tiles: $bound users/s; square sgemm $sgemm GFLOP/s = $(awk -v i="$i" -v r="$sgemm" 'BEGIN {printf "%.0f", r * 1e9 / (2 * i * 64)}') users/s"
fi

echo
echo "load after: $(uptime)"
printf '%-62s | %-22s | %s\n' "measure (medians where repeated)" "ours" "baseline / bound / bar"
cat "$out/table"
