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
psql -X -q -v ON_ERROR_STOP=1 -d $src >/dev/null <<'SQL'
CREATE EXTENSION pg_personalize;
CREATE TABLE vectors (id int PRIMARY KEY, e personalize.embedding(3) UNIQUE);
INSERT INTO vectors SELECT g, ARRAY[g, g / 7.0, -g * 1e-3]::float8[]::personalize.embedding FROM generate_series(1, 1000) g;
SET client_min_messages = warning;
CREATE TABLE clicks AS SELECT (g % 50)::bigint AS user_id, (g * 7 % 40)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 2000) g;
-- a model of several chunks: 4 MB each
SELECT personalize.train('dumped', 'als', 'clicks', '{"factors": 8, "iterations": 2}');
CREATE TABLE wide AS SELECT (g % 20000)::bigint AS user_id, (g % 1000)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 40000) g;
SELECT personalize.train('dumped_big', 'als', 'wide', '{"factors": 64, "iterations": 1}');
SQL
pg_dump -Fc -d $src -f "$dump"
createdb $dst
pg_restore -d $dst "$dump"
expected=$(psql -X -At -d $src -c "SELECT md5(string_agg(id || ':' || e::text, ',' ORDER BY id)) FROM vectors")
actual=$(psql -X -At -d $dst -c "SELECT md5(string_agg(id || ':' || e::text, ',' ORDER BY id)) FROM vectors")
served="SELECT md5(string_agg(m || u || ':' || r.item_id || ':' || r.score, ',' ORDER BY m, u, r.rank))
        FROM (VALUES ('dumped'), ('dumped_big')) v(m), generate_series(0, 49) u, LATERAL personalize.recommend(m, u, 5) r"
chunks="SELECT count(*) || ' chunks ' || md5(string_agg(bytes::text, '' ORDER BY name, version, chunk)) FROM personalize.model_chunks"
served_src=$(psql -X -At -d $src -c "$served"); served_dst=$(psql -X -At -d $dst -c "$served")
chunks_src=$(psql -X -At -d $src -c "$chunks"); chunks_dst=$(psql -X -At -d $dst -c "$chunks")
if [ "$served_src" != "$served_dst" ] || [ "$chunks_src" != "$chunks_dst" ] || [ "${chunks_src%% *}" -lt 3 ]; then
  echo "dump/restore: FAILED (models: served $served_src vs $served_dst, $chunks_src vs $chunks_dst)"
  exit 1
fi
typmod=$(psql -X -At -d $dst -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'vectors'::regclass AND attname = 'e'")
if [ "$expected" = "$actual" ] && [ "$typmod" = "personalize.embedding(3)" ]; then
  echo "dump/restore: ok (1000 rows identical, column type $typmod; models served the same, ${chunks_src%% *} chunks identical)"
else
  echo "dump/restore: FAILED (rows $expected vs $actual, column type $typmod)"
  exit 1
fi
