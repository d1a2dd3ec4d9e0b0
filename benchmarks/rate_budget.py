"""Six concurrent Dagster runs against one exchange with a 1200 weight/minute budget, with every
20th candle request answered 429 (5 %): how many 429s and 418s, how many requests reached the
venue inside a hold or ban (violations), and how much of the budget the runs used together.

Each run is a real ranged run of ``candles/1m`` (``dg.materialize`` in its own process) for a
different instrument; all six draw on the exchange's budget kept in one PostgreSQL warehouse, and
every injected 429 holds all of them for its Retry-After (1 s). Budget used = weight the simulator
served / (limit x minutes from the first to the last request).

    python benchmarks/rate_budget.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--days 150] [--fault-every 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_database, running_simulator

from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.simulator.client import read_stats

SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOT"]
LAST_DAY = dt.date(2026, 10, 31)


def simulator_yaml(limit: int, fault_every: int) -> str:
    lines = [f"weight_limit: {limit}", "ban_seconds: 120", "symbols:"]
    lines += [f"  - {{base: {s}, quote: USDT, listed: 2020-01-01, price: {100 + n}}}" for n, s in enumerate(SYMBOLS)]
    if fault_every:
        lines += ["faults:", f"  - {{kind: rate_limit, endpoint: klines, every: {fault_every}}}"]
    return "\n".join(lines) + "\n"


def universe_yaml(simulator: str, limit: int, first: dt.date) -> str:
    instruments = "\n".join(f"  - {{exchange: binance, symbol: {s}/USDT, intervals: [1m], start: {first}}}" for s in SYMBOLS)
    return (f"exchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3', weight_limit: {limit}, max_attempts: 8}}\n"
            f"instruments:\n{instruments}\n")


def one_run(universe_path: str, warehouse_url: str, symbol: str, first: dt.date) -> None:
    """One real Dagster run of candles/1m over [first, LAST_DAY] of one instrument."""
    import dagster as dg

    from ohlcv_assets.defs.assets.candles import candles_key
    from ohlcv_assets.definitions import build_definitions
    from ohlcv_assets.defs.partitions import sync_instrument_partitions
    from ohlcv_assets.defs.schedules.today import RANGE_END_TAG, RANGE_START_TAG
    from ohlcv_assets.core.universe import load_universe

    defs = build_definitions(universe_path, warehouse_url)
    key = f"binance.{symbol}-USDT"
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, load_universe(universe_path))
        result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources,
                                tags={RANGE_START_TAG: f"{first}|{key}", RANGE_END_TAG: f"{LAST_DAY}|{key}"}, raise_on_error=False)
    print(json.dumps({"symbol": symbol, "success": result.success}))


def sim_stats(simulator: str) -> dict:
    return read_stats(simulator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--days", type=int, default=150, help="days of 1m candles per run")
    parser.add_argument("--limit", type=int, default=1200, help="the simulator's weight per minute")
    parser.add_argument("--fault-every", type=int, default=20, help="every N-th candle request is answered 429 (0: none)")
    parser.add_argument("--one-run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        universe_path, warehouse_url, symbol, first = args.one_run
        one_run(universe_path, warehouse_url, symbol, dt.date.fromisoformat(first))
        return

    first = LAST_DAY - dt.timedelta(days=args.days - 1)
    warehouse_url = fresh_database(args.postgres, "bench_budget")
    Warehouse(warehouse_url).migrate()  # before the runs, so that they do not race to create tables
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sim.yaml").write_text(simulator_yaml(args.limit, args.fault_every))
        with running_simulator(Path(tmp) / "sim.yaml") as (simulator, _):
            universe = Path(tmp) / "universe.yaml"
            universe.write_text(universe_yaml(simulator, args.limit, first))
            runs = [subprocess.Popen([sys.executable, __file__, "--postgres", args.postgres,
                                      "--one-run", str(universe), warehouse_url, symbol, first.isoformat()],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for symbol in SYMBOLS]
            started = finished = None
            last_weight = 0
            per_minute: list[int] = []
            minute_mark, minute_weight = None, 0
            while any(run.poll() is None for run in runs):
                time.sleep(0.5)
                weight = sim_stats(simulator).get("weight", 0)
                now = time.monotonic()
                if weight and started is None:
                    started, minute_mark, minute_weight = now, now, 0
                if weight != last_weight:
                    finished = now
                if minute_mark is not None and now - minute_mark >= 60:
                    per_minute.append(weight - minute_weight)
                    minute_mark, minute_weight = now, weight
                last_weight = weight
            outcomes = [json.loads(run.stdout.read().strip().splitlines()[-1]) for run in runs]
            stats = sim_stats(simulator)
    minutes = (finished - started) / 60
    used = stats.get("weight", 0) / (args.limit * minutes)
    faults = f"every {args.fault_every}th candle request answered 429" if args.fault_every else "no injected 429s"
    print(f"\n### 3. Rate budget: {len(SYMBOLS)} concurrent runs, {args.limit} weight/minute, {faults}\n")
    print("| runs | succeeded | minutes | requests | weight served | 429s | 418s | violations | on the wire at a 429 "
          "| budget used | weight in each full minute |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {len(runs)} | {sum(o['success'] for o in outcomes)} | {minutes:.1f} | {stats.get('requests.klines', 0) + stats.get('requests.exchangeInfo', 0):,} "
          f"| {stats.get('weight', 0):,} | {stats.get('status.429', 0)} | {stats.get('status.418', 0)} | {stats.get('violations', 0)} "
          f"| {stats.get('in_flight_at_hold', 0)} | {used:.1%} | {', '.join(str(w) for w in per_minute)} |")


if __name__ == "__main__":
    main()
