#!/usr/bin/env bash
# Upgrade test: install the previous release, write models, an experiment and
# consents with it, ALTER EXTENSION ... UPDATE, then check that (a) the catalog
# equals a fresh install of the new version (test/upgrade/catalog.sql), (b) the
# old models are served with the same results, (c) no catalog-table row changed.
# Every release adds its step to FROM_VERSIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=$(sed -n "s/^default_version = '\(.*\)'/\1/p" pg_personalize.control)
FROM_VERSIONS="0.1.0"
old_db=pg_personalize_upgrade_old
new_db=pg_personalize_upgrade_new
out=$(mktemp -d)
trap 'rm -rf "$out"; dropdb --if-exists $old_db >/dev/null 2>&1; dropdb --if-exists $new_db >/dev/null 2>&1;
      psql -X -q -d postgres -c "DROP ROLE IF EXISTS upgrade_exempt" >/dev/null 2>&1' EXIT
status=0
for from in $FROM_VERSIONS; do
  dropdb --if-exists $old_db >/dev/null 2>&1; dropdb --if-exists $new_db >/dev/null 2>&1
  createdb $old_db; createdb $new_db
  psql -X -q -d $old_db -c "CREATE EXTENSION pg_personalize VERSION '$from'"
  psql -X -q -d $old_db -f test/upgrade/before.sql >"$out/before.log" 2>&1 || { cat "$out/before.log"; exit 1; }
  psql -X -q -v ON_ERROR_STOP=1 -d $old_db -c "ALTER EXTENSION pg_personalize UPDATE"
  version=$(psql -X -At -d $old_db -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_personalize'")
  psql -X -q -d $new_db -c "CREATE EXTENSION pg_personalize"
  psql -X -At -d $old_db -f test/upgrade/catalog.sql >"$out/updated.txt"
  psql -X -At -d $new_db -f test/upgrade/catalog.sql >"$out/fresh.txt"
  if [ "$version" != "$NEW" ]; then
    echo "upgrade $from -> $NEW: FAILED (extension is at $version)"; status=1
  elif ! diff -u "$out/fresh.txt" "$out/updated.txt" >"$out/diff"; then
    echo "upgrade $from -> $NEW: FAILED, the catalog differs from a fresh install (- fresh, + updated):"
    grep '^[-+][^-+]' "$out/diff" | head -40; status=1
  elif ! psql -X -q -d $old_db -f test/upgrade/after.sql 2>"$out/after.log"; then
    echo "upgrade $from -> $NEW: FAILED"; cat "$out/after.log"; status=1
  else
    echo "upgrade $from -> $NEW: ok ($(wc -l <"$out/fresh.txt") catalog lines equal a fresh install;" \
         "$(grep -o 'kept.*' "$out/after.log"), $(grep -o 'gave.*' "$out/after.log"))"
  fi
done
exit $status
