#!/usr/bin/env bash
# Lints every PL/pgSQL function of the extension with plpgsql_check: errors and
# warnings fail. Extra warnings are reported too, except "OUT variable is maybe
# unmodified" where the function fills its result by RETURN QUERY EXECUTE,
# which plpgsql_check cannot follow.
set -euo pipefail
db=pg_personalize_lint
trap 'dropdb --if-exists $db >/dev/null 2>&1' EXIT
dropdb --if-exists $db >/dev/null 2>&1
createdb $db
psql -X -q -v ON_ERROR_STOP=1 -d $db -c 'CREATE EXTENSION plpgsql_check; CREATE EXTENSION pg_personalize;'
report=$(psql -X -At -F ' | ' -v ON_ERROR_STOP=1 -d $db <<'SQL'
SELECT p.oid::regprocedure, coalesce(c.lineno::text, '-'), c.level, c.message, coalesce(c.detail, '')
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_personalize'
JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid,
    coalesce((SELECT t.tgrelid FROM pg_trigger t WHERE t.tgfoid = p.oid LIMIT 1), 0),
    extra_warnings => true, performance_warnings => false) c
WHERE NOT (c.message LIKE 'OUT variable % is maybe unmodified' AND c.detail = 'cannot to determine result of dynamic SQL')
ORDER BY 1, 2;
SQL
)
count=$(psql -X -At -d $db -c "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_personalize' JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'")
if [ -n "$report" ]; then
  echo "plpgsql_check: FAILED"
  echo "$report"
  exit 1
fi
echo "plpgsql_check: $count PL/pgSQL functions, no errors or warnings"
