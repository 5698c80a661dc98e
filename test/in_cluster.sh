#!/usr/bin/env bash
# Runs inside pg_virtualenv (PGHOST, PGPORT, PGUSER set). Called by test/run.sh.
# While developing, narrow it: REGRESS="embedding_io" PGTAP_TESTS="test/embedding_errors.sql".
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== pg_regress"
if ! make -s installcheck PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" ${REGRESS:+REGRESS="$REGRESS"}; then
  status=1
  [ -f regression.diffs ] && head -200 regression.diffs
fi

echo "== every SQL object of the extension has a reference entry in doc/"
bash test/check_docs.sh || status=1

echo "== pg_dump / pg_restore keep the extension's data"
bash test/check_dump.sh || status=1

echo "== plpgsql_check on every PL/pgSQL function"
bash test/check_plpgsql.sh || status=1

echo "== ALTER EXTENSION UPDATE from every earlier release equals a fresh install"
bash test/check_upgrade.sh || status=1

echo "== crash safety: backends killed while training, forgetting, activating; immediate restart"
bash test/check_crash.sh || status=1

echo "== the README's SQL tour runs as written"
bash test/check_readme.sh || status=1

echo "== Citus: a coordinator and two workers on loopback (skipped without the citus extension)"
bash test/citus/run.sh || status=1

echo "== pgTAP"
dropdb --if-exists pgtap_tests >/dev/null 2>&1
createdb pgtap_tests
psql -X -q -d pgtap_tests -c 'CREATE EXTENSION pgtap; CREATE EXTENSION pg_personalize;'
pg_prove -d pgtap_tests --failures ${PGTAP_TESTS:-test/*.sql} || status=1

exit $status
