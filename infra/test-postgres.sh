#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite, on 127.0.0.1:5432 with a `test` database and
# trust authentication for the `postgres` role (tests/fixtures/databases.py). Installs the
# server from Debian when it is missing. Its data lives in $DSR_TEST_PGDATA (default
# /var/tmp/dsr-test-postgres) and is kept between runs. `infra/test-postgres.sh stop` stops it.
set -euo pipefail

port=5432
data=${DSR_TEST_PGDATA:-/var/tmp/dsr-test-postgres}
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

ready() { psql -h 127.0.0.1 -p "$port" -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; }
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
# initdb and the server refuse to run as root: run them as the postgres user then.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-start}" = stop ]; then
  [ -d "$data" ] && as_owner "$(bindir)/pg_ctl" -D "$data" -m fast stop || true
  exit 0
fi

ready && exit 0

if [ -z "$(bindir)" ]; then
  # Debian starts its own cluster after installing; it is stopped below for ours.
  $sudo apt-get install -y -qq postgresql >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null; }
fi
bin=$(bindir)
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h | awk -v p="$port" '$3 == p && $4 == "online" {print $1, $2}' |
    while read -r version cluster; do $sudo pg_ctlcluster "$version" "$cluster" stop || true; done
fi

if [ ! -s "$data/PG_VERSION" ]; then
  $sudo mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
  "select 1 from pg_database where datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc 'create database test'
ready
echo "PostgreSQL is ready on 127.0.0.1:$port"
