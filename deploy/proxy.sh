#!/bin/sh
# Starts Caddy with deploy/Caddyfile (the login in front of the Dagster UI), and refuses to start
# without the login's credentials: an empty OHLCV_UI_USER or OHLCV_UI_PASSWORD_HASH would leave
# Caddy with no account (it would start and answer 401 to everyone) and a hash that is not bcrypt
# is a password pasted by mistake. Usage: proxy.sh [Caddyfile] (default /etc/caddy/Caddyfile).
set -eu
for name in OHLCV_UI_USER OHLCV_UI_PASSWORD_HASH; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "proxy: $name is not set: the UI is not served without a login (see .env.example)" >&2
    exit 1
  fi
done
case "$OHLCV_UI_PASSWORD_HASH" in
  '$2a$'*|'$2b$'*|'$2y$'*) ;;
  *) echo "proxy: OHLCV_UI_PASSWORD_HASH is not a bcrypt hash (make one with: caddy hash-password)" >&2; exit 1 ;;
esac
exec caddy run --config "${1:-/etc/caddy/Caddyfile}" --adapter caddyfile
