"""Weight saved by deriving intervals in the warehouse: 200 instruments (default) kept fresh in
{1m, 5m, 15m, 1h, 4h, 1d}, once with every interval fetched from the venue, once with only 1m fetched
and the five others derived from it (``derived: {5m: 1m, ...}``), each under `dagster dev` with the
project's schedules (`refresh_minutes: 1`) and automation sensor, sampled every 10 s, in one run.

Per setting: the venue's requests and weight (the simulator's counters), the CPU of the pipeline's
processes (`dagster dev` and every process under it: daemon, code server, run workers; not the
simulator, not the PostgreSQL server, which other work may share), the machine's load average
meanwhile (on a shared machine, what else ran), and per interval the staleness of each instrument:
0 while its newest closed candle is stored, else the seconds since the first candle it lacks closed
(unbounded: an instrument several candles behind is that many intervals stale; the universe starts
today, so no 1d candle closes in it and 1d has no staleness figure). Sampling starts once every
interval of every instrument is stored. Derived intervals
follow their 1m by the automation sensor's tick (30 s) and one run.

    python benchmarks/derived_weight.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--minutes 6] [--instruments 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from common import REPO, fresh_database, running_dagster_dev, running_simulator, tree_cpu_seconds
from dagster import DagsterInstance

from ohlcv_assets.core.intervals import interval_ms
from ohlcv_assets.core.universe import load_universe
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.simulator.client import read_stats
from ohlcv_assets.warehouse.store import Warehouse

INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"]
MEASURED = INTERVALS[:-1]  # the universe starts today: no 1d candle closes within it (its requests and weight still count)


def universe_text(simulator: str, bases: list[str], today: dt.date, derived: bool) -> str:
    if derived:
        spec = "intervals: [1m], derived: {" + ", ".join(f"{i}: 1m" for i in INTERVALS[1:]) + "}"
    else:
        spec = f"intervals: [{', '.join(INTERVALS)}]"
    return (f"refresh_minutes: 1\nexchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3'}}\n"
            "instruments:\n" + "".join(f"  - {{exchange: binance, symbol: {b}/USDT, {spec}, start: {today}}}\n" for b in bases))


def latest_closes(connection, derived: bool) -> dict[str, np.ndarray]:
    """Per interval: the close time (ms) of each instrument's newest stored candle."""
    out = {}
    for interval in INTERVALS:
        table = "derived_candles" if derived and interval != "1m" else "candles"
        rows = connection.execute(f"SELECT max(open_time) FROM {table} WHERE timeframe = %s GROUP BY symbol", (interval,)).fetchall()
        out[interval] = np.array([r[0] for r in rows], dtype=np.float64) + interval_ms(interval)
    return out


def run_setting(args, derived: bool) -> dict:
    bases = [f"C{n:04d}" for n in range(args.instruments)]
    today = dt.datetime.now(dt.timezone.utc).date()
    warehouse_url = fresh_database(args.postgres, "bench_derived" if derived else "bench_fetched")
    Warehouse(warehouse_url).migrate()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        (tmp / "sim.yaml").write_text("weight_limit: 6000\nsymbols:\n" + "".join(
            f"  - {{base: {b}, quote: USDT, listed: 2024-01-01, price: {10 + n}}}\n" for n, b in enumerate(bases)))
        with running_simulator(tmp / "sim.yaml") as (simulator, sim):
            (tmp / "universe.yaml").write_text(universe_text(simulator, bases, today, derived))
            home = tmp / "dagster_home"
            home.mkdir()
            shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
            env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp / "universe.yaml"),
                   "OHLCV_WAREHOUSE_URL": warehouse_url}
            with DagsterInstance.from_config(str(home)) as instance:
                sync_instrument_partitions(instance, load_universe(tmp / "universe.yaml"))
            with running_dagster_dev(env, tmp / "dagster.log"), psycopg.connect(warehouse_url, autocommit=True) as connection:
                started = time.monotonic()
                # until every interval of every instrument is stored (the first refresh of each, or its derivation)
                while min(len(c) for i, c in latest_closes(connection, derived).items() if i in MEASURED) < args.instruments:
                    if time.monotonic() - started > args.first_refresh_minutes * 60:
                        raise SystemExit("the first refresh did not store every instrument in time")
                    time.sleep(2)
                ours = lambda: tree_cpu_seconds(os.getpid(), {sim.pid})  # noqa: E731
                stats0, cpu0, began = read_stats(simulator), ours(), time.monotonic()
                samples: dict[str, list[np.ndarray]] = {i: [] for i in MEASURED}
                loads = []
                while time.monotonic() - began < args.minutes * 60:
                    loads.append(os.getloadavg()[0])
                    now = time.time() * 1000
                    for interval, closes in latest_closes(connection, derived).items():
                        if interval not in MEASURED:
                            continue
                        step = interval_ms(interval)
                        newest_closed = now // step * step
                        # behind: waiting since the first candle not stored closed (closes + step), however long ago
                        waiting = np.where(closes >= newest_closed, 0.0, (now - (closes + step)) / 1000)
                        samples[interval].append(waiting)  # every instrument has candles stored since sampling began
                    time.sleep(10)
                elapsed = time.monotonic() - began
                stats = read_stats(simulator)
                cores = (ours() - cpu0) / elapsed
    requests = sum(v for k, v in stats.items() if k.startswith("requests.")) - sum(
        v for k, v in stats0.items() if k.startswith("requests."))
    weight = stats.get("weight", 0) - stats0.get("weight", 0)
    staleness = {i: np.percentile(np.concatenate(s), [50, 99]) for i, s in samples.items()}
    return {"requests_per_min": requests / (elapsed / 60), "weight_per_min": weight / (elapsed / 60), "cores": cores,
            "staleness": staleness, "load": (min(loads), float(np.mean(loads)), max(loads))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--minutes", type=float, default=6)
    parser.add_argument("--instruments", type=int, default=200)
    parser.add_argument("--first-refresh-minutes", type=float, default=5)
    args = parser.parse_args()
    results = {name: run_setting(args, derived) for name, derived in (("fetched", False), ("derived from 1m", True))}
    print(f"\n### Derived intervals: {args.instruments} instruments x {{{', '.join(INTERVALS)}}} kept fresh, "
          f"{args.minutes:g} min sampled\n")
    print(f"| setting | requests/min | weight/min | CPU (cores: dagster dev and its processes) | "
          + " | ".join(f"{i} staleness p50/p99 (s)" for i in MEASURED) + " | machine load, 1-min avg (min / mean / max) |")
    print("|---|---:|---:|---:|" + "---:|" * len(MEASURED) + "---:|")
    for name, r in results.items():
        cells = " | ".join(f"{r['staleness'][i][0]:.0f} / {r['staleness'][i][1]:.0f}" for i in MEASURED)
        load = " / ".join(f"{v:.1f}" for v in r["load"])
        print(f"| {name} | {r['requests_per_min']:,.0f} | {r['weight_per_min']:,.0f} | {r['cores']:.2f} | {cells} | {load} |")
    print(f"\n({os.cpu_count()} cores; the load average counts every process of the machine, other work included)")


if __name__ == "__main__":
    main()
