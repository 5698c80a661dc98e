#!/usr/bin/env bash
# The demo: installs what it needs, builds and installs pg_personalize, then
# runs doc/demo.sql on a throwaway cluster with generated shop data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh >/dev/null
echo "== pg_personalize demo on a throwaway cluster"
pg_virtualenv -v 15 -o shared_preload_libraries=pg_cron,pg_personalize -o cron.database_name=postgres -o cron.use_background_workers=on \
  psql -X -q -v ON_ERROR_STOP=1 -f doc/demo.sql
