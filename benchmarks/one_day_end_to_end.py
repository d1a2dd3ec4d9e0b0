"""End to end for one instrument-day of 1m candles: simulator over HTTP -> ccxt -> validation ->
warehouse, as one real Dagster run (`dg.materialize`), on SQLite and optionally PostgreSQL.

    python benchmarks/one_day_end_to_end.py [--postgres postgresql://user@host:port/db]
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
from ohlcv_assets.core.universe import load_universe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="warehouse URL of an empty PostgreSQL database")
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()
    sim = ExchangeSimulator(SimulatorConfig.from_yaml())
    url = sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        universe_file = Path(tmp) / "universe.yaml"
        universe_file.write_text(f"""
exchanges: {{binance: {{ccxt_id: binance, api_url: "{url}/api/v3", weight_limit: 1000000}}}}
instruments: [{{exchange: binance, symbol: BTC/USDT, intervals: [1m], start: 2026-10-01}}]
""")
        universe = load_universe(universe_file)
        targets = {"sqlite": f"sqlite:///{Path(tmp) / 'w.db'}"}
        if args.postgres:
            targets["postgresql"] = args.postgres
        print("| warehouse | days | median run (s) | median ingest inside the run (s) | candles |")
        print("|---|---:|---:|---:|---:|")
        for name, warehouse_url in targets.items():
            defs = build_definitions(str(universe_file), warehouse_url=warehouse_url)
            with dg.instance_for_test() as instance:
                sync_instrument_partitions(instance, universe)
                runs, ingests, rows = [], [], 0
                for n in range(args.days):
                    day = dt.date(2026, 10, 1) + dt.timedelta(days=n)
                    began = time.perf_counter()
                    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.BTC-USDT", day),
                                            instance=instance, resources=defs.resources)
                    runs.append(time.perf_counter() - began)
                    meta = result.get_asset_materialization_events()[0].materialization.metadata
                    ingests.append(meta["seconds"].value)
                    rows += meta["candles_new"].value + meta["candles_revised"].value
                    assert "note" not in meta or "nothing" not in meta["note"].value, meta["note"].value
            print(f"| {name} | {args.days} | {statistics.median(runs):.3f} | {statistics.median(ingests):.3f} | {rows:,} |")
    sim.stop()


if __name__ == "__main__":
    main()
