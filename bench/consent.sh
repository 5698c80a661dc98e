#!/usr/bin/env bash
# Cost of consent enforcement: a full scan (count(*) and sum) of an N-row table (default
# 1,000,000 rows, 100,000 subjects, half of them consented) read by a non-exempt role after
# personalize.protect(), beside the same scan of the unprotected table in the same run
# (median of 5 interleaved rounds). Also a table protected with an exempt role (the
# exemption looked up by OID, once per statement) beside the expression 0.1.0 wrote
# (the role's name in a per-row pg_has_role call), both read by the non-exempt role. Needs PG* pointing at a cluster where the extension can
# be created, e.g.:  pg_virtualenv -v 15 bash bench/consent.sh [N]
# BENCH_UNLOCK_FD=<fd>: release a flock held on that fd once the extension is created.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pg_personalize'
if [ -n "${BENCH_UNLOCK_FD:-}" ]; then flock -u "$BENCH_UNLOCK_FD"; fi
psql -X -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS bench_open, bench_protected, bench_exempt, bench_exempt_010;
DROP ROLE IF EXISTS bench_analyst;
DROP ROLE IF EXISTS bench_auditor;
CREATE ROLE bench_analyst;
CREATE ROLE bench_auditor;
GRANT USAGE ON SCHEMA personalize TO bench_analyst;
GRANT SELECT ON personalize.consents TO bench_analyst;
CREATE TABLE bench_open AS SELECT (i % 100000)::bigint AS subject_id, i AS item FROM generate_series(1, $n) i;
CREATE TABLE bench_protected AS TABLE bench_open;
CREATE TABLE bench_exempt AS TABLE bench_open;
CREATE TABLE bench_exempt_010 AS TABLE bench_open;
INSERT INTO personalize.consents (subject_id, purpose, granted) SELECT s, 'personalization', s % 2 = 0 FROM generate_series(0, 99999) s;
SELECT personalize.protect('bench_protected', 'subject_id', 'personalization');
SELECT personalize.protect('bench_exempt', 'subject_id', 'personalization', 'bench_auditor');
-- the policy 0.1.0's protect() wrote for an exempt role
ALTER TABLE bench_exempt_010 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY rows ON bench_exempt_010 USING (true);
CREATE POLICY consent ON bench_exempt_010 AS RESTRICTIVE USING (pg_catalog.pg_has_role('bench_auditor', 'MEMBER') OR
  EXISTS (SELECT FROM personalize.consents c WHERE c.subject_id = bench_exempt_010.subject_id AND c.purpose = 'personalization'
          AND c.granted AND NOT EXISTS (SELECT FROM personalize.consents l
          WHERE l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.seq > c.seq)));
GRANT SELECT ON bench_open, bench_protected, bench_exempt, bench_exempt_010 TO bench_analyst;
VACUUM ANALYZE bench_open; VACUUM ANALYZE bench_protected; VACUUM ANALYZE bench_exempt; VACUUM ANALYZE bench_exempt_010;
ANALYZE personalize.consents;
SQL
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET ROLE bench_analyst;
CREATE TEMP TABLE timings (what text, ms float8, rows bigint);
DO $$
DECLARE t0 timestamptz; c bigint;
BEGIN
	FOR r IN 0..5 LOOP
		t0 := clock_timestamp(); SELECT count(*) INTO c FROM (SELECT sum(item) FROM bench_open GROUP BY subject_id) s;
		IF r > 0 THEN INSERT INTO timings VALUES ('unprotected (baseline)', 1000 * extract(epoch FROM clock_timestamp() - t0), c); END IF;
		t0 := clock_timestamp(); SELECT count(*) INTO c FROM (SELECT sum(item) FROM bench_protected GROUP BY subject_id) s;
		IF r > 0 THEN INSERT INTO timings VALUES ('protected (consent policy)', 1000 * extract(epoch FROM clock_timestamp() - t0), c); END IF;
		t0 := clock_timestamp(); SELECT count(*) INTO c FROM (SELECT sum(item) FROM bench_exempt GROUP BY subject_id) s;
		IF r > 0 THEN INSERT INTO timings VALUES ('protected, exempt role by OID (0.2.0)', 1000 * extract(epoch FROM clock_timestamp() - t0), c); END IF;
		t0 := clock_timestamp(); SELECT count(*) INTO c FROM (SELECT sum(item) FROM bench_exempt_010 GROUP BY subject_id) s;
		IF r > 0 THEN INSERT INTO timings VALUES ('protected, exempt role by name (0.1.0)', 1000 * extract(epoch FROM clock_timestamp() - t0), c); END IF;
	END LOOP;
END $$;
\pset footer off
SELECT what, max(rows) AS subjects_seen, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 0) AS median_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) /
              (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timings WHERE what LIKE 'unprot%'))::numeric, 2) AS ratio
FROM timings GROUP BY what ORDER BY median_ms;
RESET ROLE;
SQL
echo "rows: $n, 100000 subjects, 5 rounds (median)"
psql -X -q -c "SELECT personalize.unprotect(t) FROM unnest('{bench_protected,bench_exempt}'::regclass[]) t" \
  -c 'DROP TABLE bench_open, bench_protected, bench_exempt, bench_exempt_010' \
  -c 'DROP OWNED BY bench_analyst' -c 'DROP ROLE bench_analyst' -c 'DROP ROLE bench_auditor'
