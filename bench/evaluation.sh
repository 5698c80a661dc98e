#!/usr/bin/env bash
# Evaluation at scale: ranking_metrics over 1,000,000 users x top-10 against 5,000,000 truth
# rows, and classification_metrics over 10,000,000 scored rows. Each time is the median of
# 3 runs, beside a plain count(*) over the same input measured in the same run.
#   bash bench/evaluation.sh        (PG* variables point at a server with pg_personalize installed)
set -euo pipefail
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
\pset footer off
CREATE EXTENSION IF NOT EXISTS pg_personalize;
SET work_mem = '256MB';
DROP TABLE IF EXISTS bench_recs, bench_truth, bench_scored;
CREATE UNLOGGED TABLE bench_recs AS
SELECT u::bigint AS user_id, (((hashint8(u) & 65535) + r * 6151) % 65536)::bigint AS item_id, r AS rank
FROM generate_series(1, 1000000) u, generate_series(1, 10) r;
CREATE UNLOGGED TABLE bench_truth AS
SELECT u::bigint AS user_id, (((hashint8(u) & 65535) + (j * 3 + u % 4) * 6151) % 65536)::bigint AS item_id
FROM generate_series(1, 1000000) u, generate_series(1, 5) j;  -- some at ranks 3..10 of the list
CREATE UNLOGGED TABLE bench_scored AS
SELECT (hashint8(g) & 7) < 2 AS label, ((hashint8(g * 3) & 1048575) / 1048576.0)::float8 AS score
FROM generate_series(1, 10000000) g;
VACUUM ANALYZE bench_recs; VACUUM ANALYZE bench_truth; VACUUM ANALYZE bench_scored;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('bench_recs') + pg_prewarm('bench_truth') + pg_prewarm('bench_scored') AS pages_prewarmed;

CREATE FUNCTION pg_temp.seconds(query text, runs int DEFAULT 3) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; s float8[] := '{}';
BEGIN
  FOR i IN 1..runs LOOP
    t0 := clock_timestamp();
    EXECUTE query;
    s := s || extract(epoch FROM clock_timestamp() - t0)::float8;
  END LOOP;
  RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(s) x);
END $$;

CREATE TEMP TABLE timings (what text, rows text, seconds float8, baseline_seconds float8);
INSERT INTO timings SELECT 'ranking_metrics, k = 10', '10M recommendations + 5M truth',
  pg_temp.seconds($q$SELECT * FROM personalize.ranking_metrics('bench_recs', 'bench_truth', 10)$q$),
  pg_temp.seconds($q$SELECT (SELECT count(*) FROM bench_recs) + (SELECT count(*) FROM bench_truth)$q$);
INSERT INTO timings SELECT 'classification_metrics', '10M scored rows',
  pg_temp.seconds($q$SELECT personalize.classification_metrics(label, score) FROM bench_scored$q$),
  pg_temp.seconds($q$SELECT count(*) FROM bench_scored$q$);
SET max_parallel_workers_per_gather = 0;
INSERT INTO timings SELECT 'classification_metrics, one core', '10M scored rows',
  pg_temp.seconds($q$SELECT personalize.classification_metrics(label, score) FROM bench_scored$q$),
  pg_temp.seconds($q$SELECT count(*) FROM bench_scored$q$);
RESET max_parallel_workers_per_gather;
SELECT what, rows, round(seconds::numeric, 2) AS seconds, round(baseline_seconds::numeric, 2) AS count_star_seconds,
       round((seconds / baseline_seconds)::numeric, 1) AS x_count_star
FROM timings;
SELECT * FROM personalize.ranking_metrics('bench_recs', 'bench_truth', 10);
DROP TABLE bench_recs, bench_truth, bench_scored;
SQL
