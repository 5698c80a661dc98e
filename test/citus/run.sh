#!/usr/bin/env bash
# The Citus test suite: a coordinator and two workers on loopback (ports
# CITUS_PORT, +1, +2; default 5510) with the citus extension of the
# PostgreSQL that PG_CONFIG names, a fresh database on every node, then the
# pgTAP files test/citus/*.sql and the same-figures check. Prints that it
# skipped, and succeeds, when citus is not installed (Debian has no package:
# CI runs without it). pg_personalize must be installed in that PostgreSQL.
#   PG_CONFIG=... bash test/citus/run.sh                  # a throw-away cluster
#   PG_CONFIG=... CITUS_BASE=/path bash test/citus/run.sh # reuse (and keep) a cluster
set -uo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PG_CONFIG
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]; then
  echo "citus suite: skipped (citus is not installed in $("$PG_CONFIG" --sharedir)/extension)"
  exit 0
fi
port=${CITUS_PORT:-5510}
db=personalize_citus
if [ -n "${CITUS_BASE:-}" ]; then
  base=$CITUS_BASE
else
  base=$(mktemp -d /tmp/personalize-citus.XXXXXX)
  trap 'bash test/citus/cluster.sh stop "$base"; rm -rf "$base"' EXIT
fi
bin=$("$PG_CONFIG" --bindir)
# a fresh database: dropped on every node first (the cluster may be reused)
bash test/citus/cluster.sh start "$base" "$port" >/dev/null 2>&1 || exit 1
for p in $port $((port + 1)) $((port + 2)); do
  "$bin/dropdb" -h localhost -p $p -U postgres --if-exists --force "$db" 2>/dev/null
done
eval "$(CITUS_DB=$db bash test/citus/cluster.sh start "$base" "$port" 2>/dev/null)" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION pg_personalize' >/dev/null || exit 1
status=0
echo "== Citus $(psql -X -At -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"): coordinator localhost:$port, workers :$((port + 1)) :$((port + 2))"
pg_prove --failures test/citus/[0-9]*.sql || status=1
echo "== the same figures on distributed and local tables"
bash test/citus/same_figures.sh "$db" || status=1
exit $status
