"""Command-line tools: ohlcv (register, backfill), ohlcv-status, ohlcv-demo."""

import sys

from ohlcv_assets.settings import ConfigurationError, resolve_environment
from ohlcv_assets.universe import Universe, load_universe


def universe_or_exit(prog: str, dagster_home: bool = True) -> Universe:
    """The universe, or a one-line error naming the offending entries and exit status 2. Path
    settings are made absolute first (against the working directory the command was started in),
    and a missing universe file, DAGSTER_HOME or SQLite directory is such an error too."""
    try:
        resolve_environment(dagster_home=dagster_home)
        return load_universe()
    except ConfigurationError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
