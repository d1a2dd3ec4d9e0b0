"""A year of 1m candles of one instrument into PostgreSQL, four ways, against the simulator on
loopback (no rate limit), each in its own process so that peak RSS is its own:

  pipeline  the project's fetch + write pipeline alone (``ingest_days``)
  dagster   the same through real Dagster runs: ``dagster dev`` on the production instance config
            (deploy/dagster.yaml, storage in PostgreSQL), a backfill launched over GraphQL; its
            time includes the daemon's ticks before the first and after the last run
  naive     the cron script users have today: a ccxt ``fetch_ohlcv`` loop, one INSERT per candle
  raw       the machine's limit: the same pages by plain HTTP without parsing, and the same rows
            by one binary COPY into an unindexed table

    python benchmarks/year_of_candles.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--days 365]

The server URL is an administrative connection: each variant gets a fresh database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import orjson
import psycopg
from common import backfill_through_dagster, fresh_database, running_simulator

LAST_DAY = dt.date(2026, 10, 31)
VARIANTS = ["pipeline", "dagster", "naive", "raw"]
SIMULATOR_YAML = "weight_limit: 1000000000\nsymbols:\n  - {base: BTC, quote: USDT, listed: 2017-08-17, price: 90000}\n"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def days(count: int) -> list[dt.date]:
    return [LAST_DAY - dt.timedelta(days=n) for n in range(count)][::-1]


def exchange_config(simulator: str):
    from ohlcv_assets.core.universe import ExchangeConfig
    return ExchangeConfig(ccxt_id="binance", api_url=f"{simulator}/api/v3", weight_limit=1_000_000_000)


def run_pipeline(warehouse_url: str, simulator: str, count: int) -> dict:
    from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
    from ohlcv_assets.exchange.rate_budget import SharedRateBudget
    from ohlcv_assets.ingest.days import ingest_days
    from ohlcv_assets.core.intervals import now_ms
    from ohlcv_assets.core.universe import Instrument
    from ohlcv_assets.warehouse.store import Warehouse

    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    config = exchange_config(simulator)
    source = CcxtCandleSource("binance", config, SharedRateBudget(warehouse.engine, "binance", config))
    span = days(count)
    instrument = Instrument(exchange="binance", symbol="BTC/USDT", intervals=("1m",), start=span[0])
    began = time.perf_counter()
    written = 0
    for batch in ingest_days(source, warehouse, instrument, "1m", span, now_ms(), workers=config.fetch_concurrency):
        written += sum(report.written for _, report in batch)
    return {"seconds": time.perf_counter() - began, "candles": written, "requests": source.stats.requests}


def run_naive(warehouse_url: str, simulator: str, count: int) -> dict:
    import ccxt

    exchange = ccxt.binance({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]}}})
    exchange.urls["api"]["public"] = f"{simulator}/api/v3"
    span = days(count)
    since = int(dt.datetime.combine(span[0], dt.time(), dt.timezone.utc).timestamp() * 1000)
    end = int(dt.datetime.combine(LAST_DAY + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp() * 1000)
    written = 0
    began = time.perf_counter()
    with psycopg.connect(warehouse_url) as connection:
        connection.execute("CREATE TABLE naive_candles (exchange text, symbol text, timeframe text, open_time bigint, open float8, "
                           "high float8, low float8, close float8, volume float8, PRIMARY KEY (exchange, symbol, timeframe, open_time))")
        while since < end:
            rows = exchange.fetch_ohlcv("BTC/USDT", "1m", since, 1000)
            if not rows:
                break
            with connection.cursor() as cursor:
                for t, o, h, l, c, v in rows:
                    if t >= end:
                        break
                    cursor.execute(
                        "INSERT INTO naive_candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        ("binance", "BTC/USDT", "1m", t, o, h, l, c, v))
                    written += 1
            connection.commit()
            since = rows[-1][0] + 60_000
    return {"seconds": time.perf_counter() - began, "candles": written, "requests": None}


def run_raw(warehouse_url: str, simulator: str, count: int) -> dict:
    from ohlcv_assets.candle_frame import rows_to_frame, widen
    from ohlcv_assets.warehouse.schema import candles
    from ohlcv_assets.warehouse.pg_copy import pg_binary_copy

    span = days(count)
    start = int(dt.datetime.combine(span[0], dt.time(), dt.timezone.utc).timestamp() * 1000)
    end = int(dt.datetime.combine(LAST_DAY + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp() * 1000)
    url = urlparse(simulator)
    connection = http.client.HTTPConnection(url.hostname, url.port)
    bodies = []
    began = time.perf_counter()
    for since in range(start, end, 60_000_000):
        connection.request("GET", f"/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={since}&endTime={min(since + 60_000_000, end) - 1}&limit=1000")
        bodies.append(connection.getresponse().read())
    fetch_seconds = time.perf_counter() - began
    rows = np.array([r[:11] for body in bodies for r in orjson.loads(body)], dtype=np.float64)
    frame = rows_to_frame(widen(rows[:, :6], quote_volume=rows[:, 7], trades=rows[:, 8], taker_buy_volume=rows[:, 9],
                                taker_buy_quote_volume=rows[:, 10]))
    frame = frame.assign(exchange="binance", symbol="BTC/USDT", timeframe="1m", fetched_at=0)[[c.name for c in candles.columns]]
    payload = pg_binary_copy(candles, frame)
    with psycopg.connect(warehouse_url) as pg:
        pg.execute("CREATE TABLE raw_candles (exchange text, symbol text, timeframe text, open_time int8, open float8, "
                   "high float8, low float8, close float8, volume float8, fetched_at int8, quote_volume float8, trades int8, "
                   "taker_buy_volume float8, taker_buy_quote_volume float8, vwap float8)")
        pg.commit()
        began = time.perf_counter()
        with pg.cursor() as cursor, cursor.copy("COPY raw_candles FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(payload)
        pg.commit()
        copy_seconds = time.perf_counter() - began
    return {"seconds": fetch_seconds + copy_seconds, "fetch_seconds": fetch_seconds, "copy_seconds": copy_seconds,
            "candles": len(frame), "requests": len(bodies)}


def run_dagster(warehouse_url: str, simulator: str, count: int) -> dict:
    span = days(count)
    universe = (f"exchanges: {{binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3', weight_limit: 1000000000}}}}\n"
                f"instruments: [{{exchange: binance, symbol: BTC/USDT, intervals: [1m], start: {span[0]}}}]\n")
    return backfill_through_dagster(warehouse_url, universe, ["candles", "1m"], [f"{d}|binance.BTC-USDT" for d in span])


RUNNERS = {"pipeline": run_pipeline, "dagster": run_dagster, "naive": run_naive, "raw": run_raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--simulator", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = RUNNERS[args.variant](args.warehouse, args.simulator, args.days)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        config = Path(tmp) / "simulator.yaml"
        config.write_text(SIMULATOR_YAML)
        results = {}
        with running_simulator(config) as (simulator, _):
            for variant in args.variants.split(","):
                url = fresh_database(args.postgres, f"bench_{variant}")
                out = subprocess.run([sys.executable, __file__, "--postgres", args.postgres, "--days", str(args.days),
                                      "--variant", variant, "--warehouse", url, "--simulator", simulator],
                                     capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
                results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{variant}: {results[variant]}", file=sys.stderr, flush=True)
    print_tables(results, args.days)


def print_tables(results: dict, count: int) -> None:
    naive = results.get("naive")
    print(f"\n### 1. One instrument, {count} days of 1m candles into PostgreSQL\n")
    print("| variant | seconds | candles | candles/s | × naive | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("pipeline", "dagster", "naive"):
        if name not in results:
            continue
        r = results[name]
        rate = r["candles"] / r["seconds"]
        ratio = f"{rate / (naive['candles'] / naive['seconds']):.1f}×" if naive else "–"
        rss = r.get("run_worker_peak_rss_mb") or r["peak_rss_mb"]
        label = {"pipeline": "(a) fetch + write pipeline", "dagster": "(b) Dagster backfill (dagster dev, PostgreSQL instance)",
                 "naive": "(c) naive ccxt loop + INSERT per row"}[name]
        print(f"| {label} | {r['seconds']:.2f} | {r['candles']:,} | {rate:,.0f} | {ratio} | {rss:.0f} |")
    if "dagster" in results and "pipeline" in results:
        r, alone = results["dagster"], results["pipeline"]["seconds"]
        print("\n### Where the Dagster backfill's time goes (from launch over GraphQL)\n")
        print("| moment | seconds after launch | note |")
        print("|---|---:|---|")
        print(f"| first run queued | {r['first_run_queued_seconds']:.1f} | the backfill daemon's next tick (every 30 s) |")
        print(f"| first run started | {r['first_run_started_seconds']:.1f} | dequeued (every 1 s) and a run worker process started |")
        print(f"| every day materialized (all green) | {r['all_green_seconds']:.1f} | pipeline alone + one tick: {alone + 30:.1f} |")
        print(f"| backfill completed | {r['seconds']:.1f} | seen by the daemon's next tick |")
        print(f"\nThe run itself (start to end): {r['runs_span_seconds']:.1f} s, "
              f"{r['runs_span_seconds'] / alone:.2f}× the pipeline alone ({alone:.1f} s).")
    if "raw" in results:
        r = results["raw"]
        limit = r["candles"] / r["seconds"]
        print("\n### 2. The raw limit on this machine\n")
        print("| step | seconds | candles/s |")
        print("|---|---:|---:|")
        print(f"| plain HTTP GET of the {r['requests']} pages, no parsing | {r['fetch_seconds']:.2f} | {r['candles'] / r['fetch_seconds']:,.0f} |")
        print(f"| one binary COPY of the {r['candles']:,} rows (unindexed table) | {r['copy_seconds']:.2f} | {r['candles'] / r['copy_seconds']:,.0f} |")
        print(f"| raw limit (both, one after the other) | {r['seconds']:.2f} | {limit:,.0f} |")
        for name in ("pipeline", "dagster"):
            if name in results:
                rate = results[name]["candles"] / results[name]["seconds"]
                print(f"| {name}: share of the raw limit | | {rate / limit:.0%} (raw limit is {limit / rate:.1f}× faster) |")


if __name__ == "__main__":
    main()
