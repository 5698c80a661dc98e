#!/usr/bin/env bash
# The suite under AddressSanitizer and UndefinedBehaviorSanitizer. Builds the
# extension with -fsanitize=address,undefined,float-cast-overflow in a copy of
# the tree, installs it into a private copy of PostgreSQL 15 (Debian's binaries,
# relocated, so the system's installation is untouched), starts a throwaway
# cluster whose postmaster has the ASan runtime preloaded (see
# test/sanitize/asan_first.c for why the plain LD_PRELOAD hangs), runs
# test/in_cluster.sh (pg_regress, docs, dump, plpgsql_check, upgrade, crash
# safety, README, pgTAP) and the fuzzer (FUZZ_CASES, default 20000), and fails
# on any sanitizer report or server crash. About 5 minutes on 2 cores.
#
# Scope: our code is instrumented, PostgreSQL is not. ASan sees every access of
# our code to memory that malloc() handed out: palloc() chunks of 8 kB and more
# (model values, their sections, score and CSR arrays of real sizes) have their
# own malloc() block, so running off their end is caught; smaller chunks share a
# block with their neighbours, so an overrun of a few bytes there is not.
# (PostgreSQL also rounds chunk sizes up to 8 bytes, so ASan sees an overrun of
# a large chunk only past that rounding.) UBSan's checks (shifts, division by
# zero, overflow of float-to-integer casts, null, alignment, bounds of arrays of
# known size...) hold everywhere in our code.
#
#   bash test/sanitize.sh                   # uses PG_CONFIG, default Debian's 15
#   FUZZ_CASES=0 PGTAP_TESTS=test/models_errors.sql REGRESS=models_train bash test/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
FUZZ_CASES=${FUZZ_CASES:-20000}
SANITIZE_SUITE=${SANITIZE_SUITE:-1}	# 0: the fuzzer only
SANITIZE="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer"

work=$(mktemp -d /tmp/pg_personalize_sanitize.XXXXXX)
chmod 755 "$work"
root=$work/root
as_server=()
[ "$(id -u)" -ne 0 ] || as_server=(runuser -u postgres --)
server_started=
stop_server() {
  # immediate when a backend no longer answers (a hang the fuzzer reported)
  "${as_server[@]}" "$bin/pg_ctl" -D "$work/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    "${as_server[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  server_started=
}
cleanup() {
  [ -z "$server_started" ] || stop_server
  [ -n "${KEEP_SANITIZE_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

echo "== private PostgreSQL copy in $work"
pkglib=$(dirname "$($PG_CONFIG --bindir)")			# .../usr/lib/postgresql/15
share=$($PG_CONFIG --sharedir)
mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/usr/include" "$root/usr/lib/x86_64-linux-gnu"
cp -a "$pkglib" "$root/usr/lib/postgresql/"
cp -a "$share" "$root/usr/share/postgresql/"
ln -s "$(readlink -f "$($PG_CONFIG --includedir)")" "$root/usr/include/postgresql"
bin=$root/usr/lib/postgresql/$(basename "$pkglib")/bin

echo "== building with $SANITIZE"
mkdir "$work/build"
tar -c --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude=results --exclude=.git . | tar -x -C "$work/build"
# no LLVM bitcode: the server runs with jit = off, so uninstrumented bitcode is never run
make -s -C "$work/build" clean PG_CONFIG="$bin/pg_config" >/dev/null
make -s -C "$work/build" -j2 WERROR=1 with_llvm=no PG_CONFIG="$bin/pg_config" COPT="$SANITIZE"
make -s -C "$work/build" install with_llvm=no PG_CONFIG="$bin/pg_config" >/dev/null
# the fuzzer's test-only module (test/fuzz/personalize_fuzz.c), instrumented too
make -s -C "$work/build/test/fuzz" install with_llvm=no PG_CONFIG="$bin/pg_config" COPT="$SANITIZE" >/dev/null
gcc -shared -fPIC -O2 -Wall -Werror -o "$work/asan_first.so" test/sanitize/asan_first.c

echo "== throwaway cluster with the sanitizer runtimes preloaded"
mkdir -p "$work/data" "$work/sock" "$work/reports"
touch "$work/server.log"
[ ${#as_server[@]} -eq 0 ] || chown postgres "$work/data" "$work/sock" "$work/reports" "$work/server.log"
"${as_server[@]}" "$bin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = 5432
jit = off
fsync = off
shared_preload_libraries = 'pg_cron,pg_personalize'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
CONF
# The copy's postgres becomes a wrapper that preloads the runtime, so the
# server has it however it is started or restarted (test/check_crash.sh
# restarts it with pg_ctl). A memory error or undefined behaviour aborts the
# backend (a crash the postmaster logs, and a report file). Leaks are checked
# at every process exit without changing its exit status (exitcode=0: the
# postmaster treats a child's status 1 as a failure); test/sanitize/reports.py
# says which count.
libasan=$(ldd "$root/usr/lib/postgresql/$(basename "$pkglib")/lib/pg_personalize.so" | awk '/libasan/ {print $3}')
mv "$bin/postgres" "$bin/postgres.uninstrumented"
# exec -a: the postmaster records its argv[0] in postmaster.opts, which pg_ctl
# restart runs again; it must name the wrapper.
cat >"$bin/postgres" <<WRAPPER
#!/bin/bash
export LD_PRELOAD="$libasan $work/asan_first.so"
export ASAN_OPTIONS="abort_on_error=1:exitcode=0:detect_leaks=1:log_path=$work/reports/asan"
export UBSAN_OPTIONS="abort_on_error=1:halt_on_error=1:print_stacktrace=1:log_path=$work/reports/ubsan"
exec -a "\$0" "$bin/postgres.uninstrumented" "\$@"
WRAPPER
chmod 755 "$bin/postgres"
"${as_server[@]}" "$bin/pg_ctl" -D "$work/data" -w -t 120 -l "$work/server.log" start >/dev/null
server_started=1
export PGHOST=$work/sock PGPORT=5432 PGUSER=postgres PGDATABASE=postgres PG_CONFIG=$bin/pg_config PATH=$bin:$PATH

status=0
start=$(date +%s)
if [ "$SANITIZE_SUITE" = 1 ]; then
  (cd "$work/build" && bash test/in_cluster.sh) || status=1
  echo "suite under sanitizers: $(( $(date +%s) - start )) s"
fi
if [ "$FUZZ_CASES" -gt 0 ]; then
  start=$(date +%s)
  /usr/bin/python3 test/fuzz/fuzz.py --cases "$FUZZ_CASES" --out "$work/fuzz" || status=1
  echo "fuzzing under sanitizers: $(( $(date +%s) - start )) s"
fi

stop_server
/usr/bin/python3 test/sanitize/reports.py "$work/reports" || status=1
# signal 9 is test/check_crash.sh's SIGKILL; any other signal is a crash
if grep -E "terminated by signal [0-8]\b|terminated by signal 1[0-9]|runtime error|AddressSanitizer" "$work/server.log"; then
  echo "== the server log shows a crash or a sanitizer report (above)"; status=1
fi
[ $status -eq 0 ] && echo "sanitizers: 0 reports, no server crash"
exit $status
