"""Command-line tools: ohlcv (register, backfill), ohlcv-status, ohlcv-demo."""

import sys

from ohlcv_assets.universe import Universe, UniverseError, load_universe


def universe_or_exit(prog: str) -> Universe:
    """The universe, or a one-line error naming the offending entries and exit status 2."""
    try:
        return load_universe()
    except UniverseError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
