#!/usr/bin/env bash
# The fuzzer at length: CASES (default 1,000,000) cases of test/fuzz/fuzz.py
# against the installed extension, beside the driver's round-trip bound
# measured in the same run (mutated values through SELECT length($1)).
#   bash bench/fuzz.sh [CASES] [SEED]      (PG_CONFIG's PostgreSQL, PG* variables)
# Under the sanitizers instead: SANITIZE_SUITE=0 FUZZ_CASES=1000000 bash test/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-1000000}
seed=${2:-1}
PG_CONFIG=${PG_CONFIG:-pg_config}
make -s -C test/fuzz with_llvm=no PG_CONFIG="$PG_CONFIG"
make -s -C test/fuzz install with_llvm=no PG_CONFIG="$PG_CONFIG" >/dev/null
echo "load before: $(uptime)"
/usr/bin/python3 test/fuzz/fuzz.py --cases "$cases" --seed "$seed" --baseline 20000 --out "${FUZZ_OUT:-/tmp/pg_personalize_fuzz}"
echo "load after: $(uptime)"
