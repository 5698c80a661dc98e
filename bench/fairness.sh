#!/usr/bin/env bash
# fairness_by_group / fairness_summary over N rows (default 10,000,000) against the baseline of
# a plain GROUP BY (SELECT g, count(*) ... GROUP BY g) and the hand-written GROUP BY with the
# same four count(*) FILTER aggregates, measured in the same run: median of 5 interleaved
# rounds, warm buffers, default parallel settings. Needs PG* pointing at a cluster where the
# extension can be created, e.g.:
#   pg_virtualenv -v 15 bash bench/fairness.sh [N]
# BENCH_UNLOCK_FD=<fd>: release a flock held on that fd once the extension is created.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
rounds=5

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION IF NOT EXISTS pg_personalize;
SQL
if [ -n "${BENCH_UNLOCK_FD:-}" ]; then flock -u "$BENCH_UNLOCK_FD"; fi

psql -X -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS bench_scored;
CREATE UNLOGGED TABLE bench_scored (grp text, label boolean, score float8);
SELECT setseed(0.42);
INSERT INTO bench_scored
SELECT 'g' || (i % 8), random() < 0.3 + 0.05 * (i % 8), random() FROM generate_series(1, $n) i;
VACUUM ANALYZE bench_scored;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('bench_scored') > 0 AS warm;
SQL

psql -X -q -v ON_ERROR_STOP=1 -At <<'SQL'
CREATE TEMP TABLE timings (what text, round int, ms float8);
DO $$
DECLARE
	t0 timestamptz;
	q record;
BEGIN
	FOR r IN 0..5 LOOP   -- round 0 warms up and is not kept
		FOR q IN SELECT * FROM (VALUES
			('plain GROUP BY (baseline)', 'SELECT grp, count(*) FROM bench_scored GROUP BY grp'),
			('hand-written GROUP BY, 4 FILTER counts', 'SELECT grp, count(*), count(*) FILTER (WHERE label), count(*) FILTER (WHERE score >= 0.5), count(*) FILTER (WHERE label AND score >= 0.5) FROM bench_scored GROUP BY grp'),
			('fairness_by_group', 'SELECT * FROM personalize.fairness_by_group(''bench_scored'', ''grp'', ''label'', ''score >= 0.5'')'),
			('fairness_summary', 'SELECT * FROM personalize.fairness_summary(''bench_scored'', ''grp'', ''label'', ''score >= 0.5'')')) v(what, sql)
		LOOP
			t0 := clock_timestamp();
			EXECUTE 'SELECT count(*) FROM (' || q.sql || ') s';
			IF r > 0 THEN
				INSERT INTO timings VALUES (q.what, r, 1000 * extract(epoch FROM clock_timestamp() - t0));
			END IF;
		END LOOP;
	END LOOP;
END $$;
\pset format aligned
\pset tuples_only off
\pset footer off
SELECT what, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 0) AS median_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) /
              (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timings WHERE what LIKE 'plain%'))::numeric, 2) AS ratio_to_plain
FROM timings GROUP BY what ORDER BY median_ms;
SQL
echo "rows: $n, $rounds rounds (median), $(nproc) cores, max_parallel_workers_per_gather=$(psql -X -At -c 'SHOW max_parallel_workers_per_gather')"
psql -X -q -c 'DROP TABLE bench_scored'
