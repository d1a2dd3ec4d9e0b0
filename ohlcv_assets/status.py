"""`ohlcv-status`: the state of every instrument and interval, and the health of the moving parts,
in the terminal (or as JSON for machines).

    ohlcv-status            per instrument and interval: freshness, coverage, open gaps, checks, last run
    ohlcv-status --json
    ohlcv-status --health   warehouse reachable, Dagster daemon heartbeats, each exchange reachable
"""

import argparse
import datetime as dt
import json
import os
import sys
import time

import dagster as dg
import sqlalchemy as sa

from ohlcv_assets.assets.candles import candles_key, freshness_windows
from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.intervals import interval_ms, ms_to_iso, now_ms
from ohlcv_assets.quality import CHECKS
from ohlcv_assets.resources.warehouse import WAREHOUSE_URL_ENV, default_warehouse_url
from ohlcv_assets.universe import Universe, load_universe
from ohlcv_assets.warehouse.schema import GAP_OPEN_STATUSES, candles, gaps
from ohlcv_assets.warehouse.store import Warehouse

HEARTBEAT_STALE_SECONDS = 300


def freshness(last_open_ms: int | None, interval: str, now: int, refresh_minutes: int) -> str:
    if last_open_ms is None:
        return "no data"
    age = dt.timedelta(milliseconds=now - (last_open_ms + interval_ms(interval)))
    warn, fail = freshness_windows(interval, refresh_minutes)
    return "fresh" if age <= warn else "aging" if age <= fail else "stale"


def instrument_rows(universe: Universe, warehouse: Warehouse, instance: dg.DagsterInstance | None, now: int) -> list[dict]:
    with warehouse.engine.connect() as conn:
        stored = {(r.exchange, r.symbol, r.timeframe): r for r in conn.execute(
            sa.select(candles.c.exchange, candles.c.symbol, candles.c.timeframe, sa.func.count().label("n"),
                      sa.func.min(candles.c.open_time).label("first"), sa.func.max(candles.c.open_time).label("last"))
            .group_by(candles.c.exchange, candles.c.symbol, candles.c.timeframe))}
        open_gaps: dict[tuple, dict[str, int]] = {}
        for r in conn.execute(sa.select(gaps.c.exchange, gaps.c.symbol, gaps.c.timeframe, gaps.c.reason, sa.func.sum(gaps.c.candles))
                              .where(gaps.c.status.in_([*GAP_OPEN_STATUSES, "unfillable"]))
                              .group_by(gaps.c.exchange, gaps.c.symbol, gaps.c.timeframe, gaps.c.reason)):
            open_gaps.setdefault(tuple(r[:3]), {})[r[3]] = int(r[4])
    rows = []
    for interval in universe.intervals:
        failing = failing_checks(instance, interval) if instance else None
        step = interval_ms(interval)
        for inst in universe.instruments_for(interval):
            s = stored.get((inst.exchange, inst.symbol, interval))
            run, quality = last_run(instance, interval, inst.key) if instance else (None, None)
            expected = (now // step * step - s.first) // step if s else 0
            rows.append({
                "exchange": inst.exchange, "symbol": inst.symbol, "interval": interval,
                "freshness": freshness(s.last if s else None, interval, now, universe.refresh_minutes),
                "last_candle": ms_to_iso(s.last) if s else None,
                "coverage_pct": round(100 * s.n / expected, 3) if s and expected else None,
                "candles": s.n if s else 0,
                "open_gaps": open_gaps.get((inst.exchange, inst.symbol, interval), {}),
                "failing_checks": failing,
                "quality_score": quality,
                "last_run": run,
            })
    return rows


def failing_checks(instance: dg.DagsterInstance, interval: str) -> list[str]:
    failing = []
    for spec in CHECKS:
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(candles_key(interval), spec.name))
        if record is not None and record.status.value == "FAILED":
            failing.append(spec.name)
    return failing


def last_run(instance: dg.DagsterInstance, interval: str, instrument_key: str) -> tuple[str | None, float | None]:
    """When today's partition was last materialized, and the quality score it recorded."""
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=candles_key(interval), asset_partitions=[f"{today}|{instrument_key}"]), limit=1).records
    if not records:
        return None, None
    score = records[0].asset_materialization.metadata.get("quality_score")
    return (dt.datetime.fromtimestamp(records[0].timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            None if score is None else score.value)


def health(universe: Universe, warehouse: Warehouse, instance: dg.DagsterInstance | None) -> dict:
    report: dict = {}
    try:
        with warehouse.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        report["warehouse"] = "ok"
    except sa.exc.SQLAlchemyError as err:
        report["warehouse"] = f"unreachable: {type(err).__name__}"
    if instance is None:
        report["daemon"] = "no Dagster instance (DAGSTER_HOME not set)"
    else:
        beats = instance.get_daemon_heartbeats()
        if not beats:
            report["daemon"] = "no heartbeat: is dagster-daemon (or dagster dev) running?"
        else:
            age = time.time() - max(b.timestamp for b in beats.values())
            report["daemon"] = f"ok ({age:.0f} s since last heartbeat)" if age < HEARTBEAT_STALE_SECONDS else f"stale ({age:.0f} s)"
    for name, config in universe.exchanges.items():
        source = CcxtCandleSource(name, config.model_copy(update={"timeout_seconds": 5}))  # one plain request
        try:
            source.exchange.fetch_time()
            report[f"exchange {name}"] = "ok"
        except Exception as err:  # any failure means unreachable; the message says which
            report[f"exchange {name}"] = f"unreachable: {type(err).__name__}"
    return report


def render(rows: list[dict]) -> str:
    header = ["exchange", "symbol", "interval", "freshness", "last_candle", "coverage_pct", "open_gaps", "failing_checks",
              "quality_score", "last_run"]
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
        return ", ".join(value) or "none"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohlcv-status", description="State of every instrument and interval.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--health", action="store_true", help="warehouse, daemon and exchange reachability")
    args = parser.parse_args(argv)
    universe = load_universe()
    warehouse = Warehouse(os.environ.get(WAREHOUSE_URL_ENV) or default_warehouse_url())
    warehouse.migrate()
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    try:
        result = health(universe, warehouse, instance) if args.health else instrument_rows(universe, warehouse, instance, now_ms())
    finally:
        warehouse.dispose()
        if instance is not None:
            instance.dispose()
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.health:
        print("\n".join(f"{k:<24} {v}" for k, v in result.items()))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
