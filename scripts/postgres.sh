#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and local runs, from the machine's server binaries.
#   scripts/postgres.sh start DATA_DIR [PORT]   initialise, start, create database ohlcv_test; prints its URL last
#   scripts/postgres.sh stop DATA_DIR           stop it
# PostgreSQL refuses to run as root, so as root the cluster is owned and run by `postgres`.
set -euo pipefail
action=${1:?usage: postgres.sh start|stop DATA_DIR [PORT]}
data_dir=${2:?usage: postgres.sh start|stop DATA_DIR [PORT]}
port=${3:-}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$action" = stop ]; then
  as_owner "$bindir/pg_ctl" -D "$data_dir" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
if [ -f "$data_dir/postmaster.pid" ]; then
  as_owner "$bindir/pg_ctl" -D "$data_dir" -m immediate stop >/dev/null 2>&1 || true
fi
rm -rf "$data_dir"
mkdir -p "$data_dir"
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data_dir"; fi
as_owner "$bindir/initdb" -D "$data_dir" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
as_owner "$bindir/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w \
  -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
"$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE ohlcv_test" >/dev/null
echo "postgresql://postgres@127.0.0.1:$port/ohlcv_test"
