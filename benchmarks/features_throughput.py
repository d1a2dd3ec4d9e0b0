"""Feature rows per second for a year of 1m candles of one instrument (no database).

    python benchmarks/features_throughput.py [--days 365] [--repeat 3]
"""

import argparse
import datetime as dt
import resource
import time

import pandas as pd

from ohlcv_assets.features.compute import compute_features
from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.simulator.market import SimSymbol, SimulatedMarket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    market = SimulatedMarket({"BTCUSDT": SimSymbol("BTC", "USDT", dt.date(2020, 1, 1), 60000.0)})
    start = day_bounds_ms(dt.date(2025, 1, 1))[0]
    end = start + args.days * DAY_MS
    candles = pd.DataFrame(market.candles(market.symbols["BTCUSDT"], MINUTE_MS, start, end, end + DAY_MS).as_floats())
    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        features = compute_features(candles, MINUTE_MS)
        timings.append(time.perf_counter() - began)
    best = min(timings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| candles | feature columns | best of %d (s) | feature rows/s | peak RSS (MB) |" % args.repeat)
    print("|---:|---:|---:|---:|---:|")
    print(f"| {len(candles):,} | {features.shape[1] - 1} | {best:.2f} | {len(candles) / best:,.0f} | {peak_mb:,.0f} |")


if __name__ == "__main__":
    main()
