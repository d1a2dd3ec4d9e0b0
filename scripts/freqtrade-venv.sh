#!/usr/bin/env bash
# freqtrade in a virtual environment of its own (its exact pins never constrain ours), for the tests
# that load our exports with freqtrade's data handlers and for benchmarks/vs_freqtrade.py.
#   scripts/freqtrade-venv.sh [DIR]   builds DIR (default .freqtrade-venv) once; prints its python last
# Safe to run concurrently (the second caller waits for the first) and again (nothing to do).
set -euo pipefail
cd "$(dirname "$0")/.."
FREQTRADE_VERSION=2026.9
dir=$(realpath -m "${1:-.freqtrade-venv}")
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ ! -f "$dir/ready-$FREQTRADE_VERSION" ]; then
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "freqtrade==$FREQTRADE_VERSION"
  touch "$dir/ready-$FREQTRADE_VERSION"
fi
echo "$dir/bin/python"
