#!/usr/bin/env bash
# Shared by the README's two commands: install Debian packages, build with
# warnings as errors, install the extension. Works as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-common libopenblas-dev
  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron postgresql-15-plpgsql-check
  make gcc python3 python3-psycopg python3-numpy python3-scipy python3-sklearn python3-statsmodels python3-mpmath"

missing=$(dpkg-query -W -f='${Package} ${Status}\n' $PACKAGES 2>/dev/null |
          awk '$NF != "installed" {print $1}'; \
          for p in $PACKAGES; do dpkg-query -W "$p" >/dev/null 2>&1 || echo "$p"; done)
missing=$(echo "$missing" | sort -u | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  echo "== installing: $missing"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
echo "== building"
make -s clean
make -s -j2 WERROR=1
$SUDO make -s install PG_CONFIG="$PG_CONFIG"
