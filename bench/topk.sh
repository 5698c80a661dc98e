#!/usr/bin/env bash
# Exact top-10 latency over N random embedding(64) rows, one core, warm buffers.
#   bash bench/topk.sh [N ...]        (default: 100000 1000000; needs the extension installed)
# For each operator: median and p95 of 50 queries (median over 5 interleaved rounds), beside two baselines measured
# in the same run: the memory-bandwidth bound (table bytes / single-core read
# bandwidth) and a plain scan of the same rows (SELECT count(*)); and pgvector's
# vector type on the same data when that extension happens to be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-100000 1000000}")
sizes=(${sizes[*]})
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cc -O2 -o "$out/membw" bench/membw.c
bandwidth=$("$out/membw" 1024 2>/dev/null)
echo "single-core read bandwidth: $bandwidth GB/s (median of 9 passes over 1 GiB)"

cat > "$out/bench.sql" <<'SQL'
\set ON_ERROR_STOP on
SET max_parallel_workers_per_gather = 0;
SET jit = off;
CREATE EXTENSION IF NOT EXISTS pg_personalize;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'vector') > 0 AS has_pgvector \gset
\if :has_pgvector
CREATE EXTENSION IF NOT EXISTS vector;
\endif
DROP TABLE IF EXISTS bench_items;
CREATE TABLE bench_items (id int, e personalize.embedding(64));
SELECT setseed(0.42);
INSERT INTO bench_items
SELECT g, (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 64) WHERE g > 0)::personalize.embedding
FROM generate_series(1, :n) g;
VACUUM ANALYZE bench_items;
\if :has_pgvector
DROP TABLE IF EXISTS bench_vectors;
CREATE TABLE bench_vectors AS SELECT id, e::text::vector(64) AS e FROM bench_items;
VACUUM ANALYZE bench_vectors;
\endif
CREATE TEMP TABLE queries AS
SELECT q, (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 64) WHERE q > 0)::personalize.embedding AS e
FROM generate_series(1, 50) q;

CREATE FUNCTION pg_temp.time_queries(query text, vector_type bool DEFAULT false) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ms float8[] := '{}';
BEGIN
  EXECUTE format(query, CASE WHEN vector_type THEN '(SELECT e FROM queries LIMIT 1)::text::vector'
                             ELSE '(SELECT e FROM queries LIMIT 1)' END);  -- warm-up
  FOR r IN SELECT e FROM queries ORDER BY q LOOP
    t0 := clock_timestamp();
    IF vector_type THEN
      EXECUTE format(query, '$1::text::vector') USING r.e;
    ELSE
      EXECUTE format(query, '$1') USING r.e;
    END IF;
    ms := ms || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  RETURN ARRAY[percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.95) WITHIN GROUP (ORDER BY x)]
         FROM unnest(ms) x;
END $$;

SELECT pg_prewarm('bench_items') AS pages \gset
\if :has_pgvector
SELECT pg_prewarm('bench_vectors') AS vpages \gset
\endif
SELECT pg_relation_size('bench_items') AS bytes \gset
CREATE TEMP TABLE results (round int, what text, median_ms float8, p95_ms float8);
-- Five rounds, ours and pgvector's alternating first, so that drift on a
-- shared machine hits both alike; each figure is the median over rounds.
\set round 1
\ir topk_round.sql
\set round 2
\ir topk_round.sql
\set round 3
\ir topk_round.sql
\set round 4
\ir topk_round.sql
\set round 5
\ir topk_round.sql
CREATE TEMP TABLE summary AS
SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY median_ms) AS median_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p95_ms) AS p95_ms
FROM results GROUP BY what;
\pset footer off
SELECT :n AS rows, pg_size_pretty(:bytes::bigint) AS table_size,
       round((:bytes / (:bw * 1e9) * 1000)::numeric, 2) AS bandwidth_bound_ms;
SELECT what, round(median_ms::numeric, 2) AS median_ms, round(p95_ms::numeric, 2) AS p95_ms,
       round((median_ms / (:bytes / (:bw * 1e9) * 1000))::numeric, 1) AS x_bandwidth_bound,
       round((median_ms / (SELECT median_ms FROM summary WHERE what LIKE 'count%'))::numeric, 2) AS x_count_scan,
       round((median_ms / NULLIF((SELECT median_ms FROM summary s2 WHERE s2.what = 'pgvector ' || split_part(summary.what, ' ', 2)), 0))::numeric, 2) AS x_pgvector,
       round((median_ms * 1e6 / :n)::numeric, 0) AS ns_per_row
FROM summary ORDER BY what;
DROP TABLE bench_items;
\if :has_pgvector
DROP TABLE bench_vectors;
\endif
SQL

cat > "$out/topk_round.sql" <<'SQL'
INSERT INTO results SELECT :round, 'count(*) scan (baseline)', t[1], t[2]
  FROM pg_temp.time_queries('SELECT count(*) FROM bench_items WHERE %s IS NOT NULL') t;
SELECT (:round % 2 = 0 AND :'has_pgvector'::bool) AS vector_first \gset
\if :vector_first
\ir topk_pgvector.sql
\endif
INSERT INTO results SELECT :round, 'embedding ' || op, t[1], t[2]
  FROM unnest(ARRAY['<->', '<#>', '<=>']) op,
       LATERAL pg_temp.time_queries('SELECT id FROM bench_items ORDER BY e OPERATOR(personalize.' || op || ') %s LIMIT 10') t;
SELECT (:round % 2 = 1 AND :'has_pgvector'::bool) AS vector_last \gset
\if :vector_last
\ir topk_pgvector.sql
\endif
SQL

cat > "$out/topk_pgvector.sql" <<'SQL'
INSERT INTO results SELECT :round, 'pgvector ' || op, t[1], t[2]
  FROM unnest(ARRAY['<->', '<#>', '<=>']) op,
       LATERAL pg_temp.time_queries('SELECT id FROM bench_vectors ORDER BY e OPERATOR(public.' || op || ') %s LIMIT 10', true) t;
SQL

for n in "${sizes[@]}"; do
  echo
  echo "== exact top-10, N = $n, embedding(64), one core"
  psql -X -q -v n="$n" -v bw="$bandwidth" -f "$out/bench.sql"
done
