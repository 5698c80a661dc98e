#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs,
# builds with warnings as errors, installs, then runs pg_regress (sql/ +
# expected/) and pgTAP (test/*.sql) against a throwaway cluster; then the
# same suite and the fuzzer under ASan and UBSan (test/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup.sh

echo "== reference files are what the committed scripts produce (numbers to a relative 1e-12)"
/usr/bin/python3 test/reference/generate.py --self-test
/usr/bin/python3 test/reference/generate.py --check
echo "== META.json against the PGXN Meta Spec 1.0.0"
/usr/bin/python3 test/check_meta.py

echo "== tests on a throwaway cluster"
# pg_virtualenv (postgresql-common) makes a temporary cluster, runs the
# command with PG* variables pointing at it, and removes it afterwards.
pg_virtualenv -v 15 -o shared_preload_libraries=pg_cron,pg_personalize -o cron.database_name=postgres -o cron.use_background_workers=on \
  -o max_worker_processes=16 bash test/in_cluster.sh

echo "== the suite again, and 20,000 fuzz cases, under AddressSanitizer and UndefinedBehaviorSanitizer"
bash test/sanitize.sh
