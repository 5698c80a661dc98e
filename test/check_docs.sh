#!/usr/bin/env bash
# Every SQL object the extension creates (function, aggregate, type, operator,
# operator class, table, view) must appear in backticks in doc/*.md, as
# `name` or `personalize.name` (operators as `<->`). Needs a database with
# the extension (PG* variables), as in test/in_cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
db=pg_personalize_docs
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -d "$db" -c 'CREATE EXTENSION pg_personalize' >/dev/null
names=$(psql -X -At -d "$db" <<'SQL'
WITH ext AS (SELECT classid, objid FROM pg_depend
             WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
               AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize'))
SELECT DISTINCT p.proname FROM ext JOIN pg_proc p ON ext.classid = 'pg_proc'::regclass AND p.oid = ext.objid
UNION SELECT t.typname FROM ext JOIN pg_type t ON ext.classid = 'pg_type'::regclass AND t.oid = ext.objid
UNION SELECT o.oprname FROM ext JOIN pg_operator o ON ext.classid = 'pg_operator'::regclass AND o.oid = ext.objid
UNION SELECT c.opcname FROM ext JOIN pg_opclass c ON ext.classid = 'pg_opclass'::regclass AND c.oid = ext.objid
UNION SELECT r.relname FROM ext JOIN pg_class r ON ext.classid = 'pg_class'::regclass AND r.oid = ext.objid
      WHERE r.relkind IN ('r', 'v', 'm', 'p')
SQL
)
dropdb "$db"
missing=0
while IFS= read -r name; do
  [ -n "$name" ] || continue
  if ! grep -qF -e "\`$name\`" -e "\`personalize.$name\`" -e "\`$name(" -e "\`personalize.$name(" doc/*.md; then
    echo "not documented in doc/: $name"
    missing=$((missing + 1))
  fi
done <<< "$names"
[ "$missing" -eq 0 ] && echo "doc coverage: all $(wc -l <<< "$names") objects documented"
exit $((missing > 0))
