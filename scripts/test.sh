#!/usr/bin/env bash
# Installs what the tests need (the project into .venv; as root, Debian's PostgreSQL server,
# Chromium, redis-server, Prometheus and Caddy when missing), starts a throwaway PostgreSQL (unless OHLCV_TEST_POSTGRES_URL is set),
# checks that the Dagster definitions load, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the Celery broker of test_celery.py
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)  # prometheus and promtool, for test_prometheus.py
command -v caddy >/dev/null 2>&1 || missing+=(caddy)  # the login proxy of deploy/Caddyfile, for test_proxy.py
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# freqtrade's own virtual environment (for the test that loads our futures export with freqtrade), built in the
# background while the rest installs and the tests start; its fixture waits for it (flock) or builds it itself.
scripts/freqtrade-venv.sh >/dev/null 2>&1 &

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

pg_dir=""
if [ -z "${OHLCV_TEST_POSTGRES_URL:-}" ]; then
  pg_dir=$(mktemp -d /tmp/ohlcv-test-pg.XXXXXX)
  chmod 755 "$pg_dir"
  trap 'scripts/postgres.sh stop "$pg_dir/data"; rm -rf "$pg_dir"' EXIT
  OHLCV_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir/data" | tail -n 1)
  export OHLCV_TEST_POSTGRES_URL
fi
echo "PostgreSQL for the tests: $OHLCV_TEST_POSTGRES_URL"

.venv/bin/dg check defs
# One test at a time to each worker: the e2e-marked ones (minutes each, ordered first by conftest.py)
# spread over both. At the end each worker fails the run if a process a test started is still alive.
.venv/bin/python -m pytest -n 2 --maxschedchunk=1 --durations=12 "$@"
