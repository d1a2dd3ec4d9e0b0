"""`ohlcv-status`: the state of every instrument and interval, and the health of the moving parts,
in the terminal (or as JSON for machines). It only reads: it never creates a warehouse, and a
missing or empty one is an error naming the URL it tried (exit 2).

It reads the universe and warehouse the Dagster instance runs with: every candles materialization
records both, and where none is given the recorded ones are read; where one is given that differs
from the recorded one, or a warehouse holds none of the universe's instruments, it refuses (exit 2),
naming both (``--health`` reports them as failing parts instead).

    ohlcv-status            per instrument and interval: freshness, coverage, gaps, where its days came from
                            (archive/rest), ranges retention retired, candles on which sources disagreed,
                            failing checks, last run
    ohlcv-status --json
    ohlcv-status --health   warehouse, Dagster daemon, each exchange; exit 1 when any part is not ok
"""

import argparse
import json
import os
import sys
from pathlib import Path

import dagster as dg

from ohlcv_assets.cli import one_line_errors, universe_or_exit
from ohlcv_assets.core.errors import ConfigurationError
from ohlcv_assets.core.intervals import now_ms
from ohlcv_assets.defs.monitoring import (
    health,
    healthy,
    instrument_rows,
    recorded_settings,
    settings_in_use,
    stored_instruments,
)
from ohlcv_assets.core.settings import (
    DAGSTER_HOME_ENV,
    UNIVERSE_ENV,
    describe_warehouse_setting,
    resolve_environment,
    warehouse_url,
    warehouse_url_is_explicit,
)
from ohlcv_assets.core.universe import Universe, universe_in_use, universe_path
from ohlcv_assets.warehouse.store import Warehouse, WarehouseMissing, describe_held, held_instruments
from ohlcv_assets.warehouse.urls import public_url


def render(rows: list[dict]) -> str:
    header = ["exchange", "symbol", "interval", "freshness", "last_candle", "coverage_pct", "open_gaps", "day_sources",
              "retired", "disagreeing_candles", "failing_checks", "quality_score", "last_run"]
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
    try:
        resolve_environment()
    except ConfigurationError as err:
        return refuse(str(err))
    given = universe_path()
    if given is not None:
        universe_or_exit("ohlcv-status")  # a broken universe is named before anything else is opened
    instance = dg.DagsterInstance.get() if os.environ.get(DAGSTER_HOME_ENV) else None
    warehouse = None
    try:
        recorded = recorded_settings(instance) if instance is not None else None
        use = settings_in_use(given, warehouse_url(), warehouse_url_is_explicit(), recorded,
                              os.environ.get(DAGSTER_HOME_ENV, ""), universe_in_use(None))
        if not args.health and (use.universe_problem or use.warehouse_problem):
            return refuse(*(p for p in (use.universe_problem, use.warehouse_problem) if p))
        if use.universe is not None:
            os.environ[UNIVERSE_ENV] = str(use.universe)
        universe = universe_or_exit("ohlcv-status")
        problem = use.warehouse_problem
        if problem is None:
            try:
                warehouse = Warehouse.open_existing(use.warehouse_url)
            except (WarehouseMissing, ConfigurationError) as err:
                problem = f"{err} ({describe_warehouse_setting() if use.warehouse_url == warehouse_url() else recorded.describe()})"
        if args.health:
            result = health(universe, warehouse, problem, instance, use.universe_problem)
        elif problem:
            return refuse(problem)
        else:
            unknown = holds_none_of(universe, warehouse, universe_in_use(None))
            if unknown:
                return refuse(unknown)
            result = instrument_rows(universe, warehouse, instance, now_ms())
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


def refuse(*problems: str) -> int:
    for problem in problems:
        print(f"ohlcv-status: {problem}", file=sys.stderr)
    return 2


def holds_none_of(universe: Universe, warehouse: Warehouse, path: Path) -> str | None:
    """A warehouse with candles, but none of the universe's: the universe or the warehouse is not
    the pipeline's, and a page of "no data" would hide it."""
    wanted = {(i.exchange, i.symbol, interval) for interval in universe.intervals for i in universe.instruments_for(interval)}
    if stored_instruments(warehouse, wanted):
        return None
    held = held_instruments(warehouse)
    return (f"the warehouse at {public_url(warehouse.url)} holds none of the {len(wanted)} instrument-intervals of the "
            f"universe {path}; it holds {describe_held(held)}: give the universe (OHLCV_UNIVERSE) and the warehouse "
            "(OHLCV_WAREHOUSE_URL) the pipeline runs with")


if __name__ == "__main__":
    sys.exit(main())
