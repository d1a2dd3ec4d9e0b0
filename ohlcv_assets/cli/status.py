"""`ohlcv-status`: the state of every instrument and interval, and the health of the moving parts,
in the terminal (or as JSON for machines). It only reads: it never creates a warehouse, and a
missing or empty one is an error naming the URL it tried (exit 2).

    ohlcv-status            per instrument and interval: freshness, coverage, gaps, where its days came from
                            (archive/rest), candles on which sources disagreed, failing checks, last run
    ohlcv-status --json
    ohlcv-status --health   warehouse, Dagster daemon, each exchange; exit 1 when any part is not ok
"""

import argparse
import json
import os
import sys

import dagster as dg

from ohlcv_assets.cli import one_line_errors, universe_or_exit
from ohlcv_assets.errors import ConfigurationError
from ohlcv_assets.intervals import now_ms
from ohlcv_assets.monitoring import health, healthy, instrument_rows
from ohlcv_assets.settings import DAGSTER_HOME_ENV, describe_warehouse_setting, warehouse_url
from ohlcv_assets.warehouse.store import Warehouse, WarehouseMissing


def render(rows: list[dict]) -> str:
    header = ["exchange", "symbol", "interval", "freshness", "last_candle", "coverage_pct", "open_gaps", "day_sources",
              "disagreeing_candles", "failing_checks", "quality_score", "last_run"]
    cells = [[_cell(row[h]) for h in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}:{v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(value) or "none"
    return str(value)


@one_line_errors("ohlcv-status")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohlcv-status", description="State of every instrument and interval.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--health", action="store_true", help="warehouse, daemon and exchange reachability")
    args = parser.parse_args(argv)
    universe = universe_or_exit("ohlcv-status")
    url = warehouse_url()
    warehouse, problem = None, None
    try:
        warehouse = Warehouse.open_existing(url)
    except (WarehouseMissing, ConfigurationError) as err:
        problem = f"{err} ({describe_warehouse_setting()})"
        if not args.health:
            print(f"ohlcv-status: {problem}", file=sys.stderr)
            return 2
    instance = dg.DagsterInstance.get() if os.environ.get(DAGSTER_HOME_ENV) else None
    try:
        result = health(universe, warehouse, problem, instance) if args.health else instrument_rows(universe, warehouse, instance, now_ms())
    finally:
        if warehouse is not None:
            warehouse.dispose()
        if instance is not None:
            instance.dispose()
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.health:
        print("\n".join(f"{k:<24} {v}" for k, v in result.items()))
    else:
        print(render(result))
    return 0 if not args.health or healthy(result) else 1


if __name__ == "__main__":
    sys.exit(main())
