#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints its URL on the last line.
# PostgreSQL refuses to run as root, so as root the cluster is initialised and run as `postgres`.
# Usage: scripts/start-postgres.sh [DATA_DIR] [PORT]
set -euo pipefail
data_dir=${1:-/tmp/ohlcv-pg}
port=${2:-}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ -f "$data_dir/postmaster.pid" ]; then
  as_owner "$bindir/pg_ctl" -D "$data_dir" -m immediate stop >/dev/null 2>&1 || true
fi
rm -rf "$data_dir"
mkdir -p "$data_dir"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$data_dir"
as_owner "$bindir/initdb" -D "$data_dir" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
as_owner "$bindir/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w \
  -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
"$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE ohlcv_test" >/dev/null
echo "postgresql://postgres@127.0.0.1:$port/ohlcv_test"
