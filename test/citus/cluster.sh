#!/usr/bin/env bash
# cluster.sh — a Citus coordinator and two workers on loopback, for the Citus
# test suite. Uses the PostgreSQL that PG_CONFIG names and whatever `citus`
# extension is installed in it (this script never builds Citus).
#   PG_CONFIG=... [CITUS_DB=name] bash test/citus/cluster.sh start BASE [PORT]   # PORT, PORT+1, PORT+2
#   bash test/citus/cluster.sh stop BASE
# Prints the environment to use the coordinator: eval "$(... start ...)".
set -euo pipefail
cmd=$1 base=$2 port=${3:-5510}
bin=$("${PG_CONFIG:-pg_config}" --bindir)
nodes="coord w1 w2"
# initdb refuses to run as root: run the servers as postgres then
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $cmd in
  stop)
    for n in $nodes; do
      [ -f "$base/$n/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$base/$n" -m fast -w stop >/dev/null
    done
    exit 0;;
  start) ;;
  *) echo "usage: cluster.sh start|stop BASE [PORT]" >&2; exit 2;;
esac

if [ ! -f "$("${PG_CONFIG:-pg_config}" --sharedir)/extension/citus.control" ]; then
  echo "citus is not installed in $("${PG_CONFIG:-pg_config}" --sharedir)" >&2; exit 3
fi
mkdir -p "$base"; [ "$(id -u)" = 0 ] && chown postgres "$base"
i=0
for n in $nodes; do
  p=$((port + i)); i=$((i + 1))
  if [ ! -f "$base/$n/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$base/$n" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$base/$n/postgresql.conf" <<CONF
port = $p
listen_addresses = 'localhost'
unix_socket_directories = '$base'
shared_preload_libraries = 'citus,pg_personalize'
max_connections = 200
max_worker_processes = 16
fsync = off
synchronous_commit = off
full_page_writes = off
max_prepared_transactions = 100
citus.log_distributed_deadlock_detection = off
CONF
  fi
  if ! as_owner "$bin/pg_ctl" -D "$base/$n" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$base/$n" -w -l "$base/$n.log" start >/dev/null
  fi
done

# citus in the database ($CITUS_DB, default postgres) of every node; the workers registered once
db=${CITUS_DB:-postgres}
for p in $port $((port + 1)) $((port + 2)); do
  if [ "$db" != postgres ] && [ -z "$("$bin/psql" -X -At -h localhost -p $p -U postgres -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    "$bin/createdb" -h localhost -p $p -U postgres "$db"
  fi
  "$bin/psql" -X -q -h localhost -p $p -U postgres -d "$db" -c 'CREATE EXTENSION IF NOT EXISTS citus' >/dev/null
done
"$bin/psql" -X -q -h localhost -p $port -U postgres -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT citus_set_coordinator_host('localhost', $port);
SELECT citus_add_node('localhost', p) FROM (VALUES ($((port + 1))), ($((port + 2)))) v(p)
WHERE NOT EXISTS (SELECT FROM pg_dist_node d WHERE d.nodeport = v.p);
SQL
echo "export PATH=$bin:\$PATH PGHOST=localhost PGPORT=$port PGUSER=postgres PGDATABASE=$db"
