#!/usr/bin/env bash
# The README's SQL tour must run as written: its first ```sql block is executed in a fresh
# database with ON_ERROR_STOP. Needs PG* variables, as in test/in_cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
db=pg_personalize_readme
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
awk '/^```sql/{on=1; next} /^```/{if (on) exit} on' README.md > /tmp/pg_personalize_readme_tour.sql
if psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f /tmp/pg_personalize_readme_tour.sql > /dev/null 2>/tmp/pg_personalize_readme_tour.err; then
  echo "README tour: ok ($(grep -c ';' /tmp/pg_personalize_readme_tour.sql) statements)"
  status=0
else
  echo "README tour: FAILED"; grep -v NOTICE /tmp/pg_personalize_readme_tour.err | head -5
  status=1
fi
dropdb "$db"
exit $status
