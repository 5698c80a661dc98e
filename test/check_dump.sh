#!/usr/bin/env bash
# pg_dump / pg_restore round trip: a database using the extension is dumped in
# custom format, restored into a new database, and compared row by row.
set -euo pipefail
src=pg_personalize_dump_src
dst=pg_personalize_dump_dst
dump=$(mktemp)
trap 'rm -f "$dump"; dropdb --if-exists $src; dropdb --if-exists $dst' EXIT
dropdb --if-exists $src >/dev/null 2>&1; dropdb --if-exists $dst >/dev/null 2>&1
createdb $src
psql -X -q -v ON_ERROR_STOP=1 -d $src <<'SQL'
CREATE EXTENSION pg_personalize;
CREATE TABLE vectors (id int PRIMARY KEY, e personalize.embedding(3) UNIQUE);
INSERT INTO vectors SELECT g, ARRAY[g, g / 7.0, -g * 1e-3]::float8[]::personalize.embedding FROM generate_series(1, 1000) g;
SQL
pg_dump -Fc -d $src -f "$dump"
createdb $dst
pg_restore -d $dst "$dump"
expected=$(psql -X -At -d $src -c "SELECT md5(string_agg(id || ':' || e::text, ',' ORDER BY id)) FROM vectors")
actual=$(psql -X -At -d $dst -c "SELECT md5(string_agg(id || ':' || e::text, ',' ORDER BY id)) FROM vectors")
typmod=$(psql -X -At -d $dst -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'vectors'::regclass AND attname = 'e'")
if [ "$expected" = "$actual" ] && [ "$typmod" = "personalize.embedding(3)" ]; then
  echo "dump/restore: ok (1000 rows identical, column type $typmod)"
else
  echo "dump/restore: FAILED (rows $expected vs $actual, column type $typmod)"
  exit 1
fi
