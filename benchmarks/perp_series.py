"""A perpetual's series beside its trade klines: a span of days of one Binance USDⓈ-M perpetual
through the project's pipeline (``ingest_days`` for trade, mark, index and premium index klines,
``ingest_funding_days`` for funding settlements, ``ingest_open_interest_days`` for open interest at
5 minutes: REST serves only its latest 30 days, so the span's comes from the archive's daily metrics
files) against the simulator in its own process, into a fresh warehouse; per series the seconds,
requests (the simulator's count: REST requests, and archive files and checksums for open interest)
and rows written.

    python benchmarks/perp_series.py --warehouse postgresql://postgres@127.0.0.1:55432/postgres [--days 365] [--interval 1m]

A PostgreSQL URL is an administrative connection (a fresh database is made); a SQLite one is a new file.
The funding interval changes from 8 h to 4 h halfway through the span.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from common import fresh_database, running_simulator

LAST_DAY = dt.date(2026, 10, 31)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", required=True, help="PostgreSQL admin URL or sqlite:///path")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--interval", default="1h")
    args = parser.parse_args()
    from ohlcv_assets.core.intervals import now_ms
    from ohlcv_assets.core.universe import ExchangeConfig, Instrument
    from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
    from ohlcv_assets.ingest.days import ingest_days
    from ohlcv_assets.archive.formats import build_archive
    from ohlcv_assets.core.universe import ArchiveConfig
    from ohlcv_assets.ingest.funding import ingest_funding_days
    from ohlcv_assets.ingest.open_interest import ingest_open_interest_days
    from ohlcv_assets.venues.series import series_code
    from ohlcv_assets.warehouse.store import Warehouse

    span = [LAST_DAY - dt.timedelta(days=n) for n in range(args.days)][::-1]
    change = span[len(span) // 2]
    url = (fresh_database(args.warehouse, "bench_perp_series") if args.warehouse.startswith("postgresql")
           else args.warehouse)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "sim.yaml"
        config.write_text("venues: {binanceusdm: {weight_limit: 1000000000, funding_limit: 1000000}}\nsymbols:\n"
                          f"  - {{base: BTC, quote: USDT, listed: 2017-08-17, price: 90000, venues: [binanceusdm], funding: "
                          f"[{{from: 2017-08-17, hours: 8}}, {{from: '{change}T00:00', hours: 4}}]}}\n")
        with running_simulator(config) as (sim, _):
            warehouse = Warehouse(url)
            warehouse.migrate()
            exchange = ExchangeConfig(ccxt_id="binanceusdm", api_url=f"{sim}/fapi/v1", weight_limit=1_000_000_000)
            source = CcxtCandleSource("perps", exchange)
            instrument = Instrument(exchange="perps", symbol="BTC/USDT:USDT", intervals=(args.interval,), start=span[0],
                                    series=("mark", "index", "premium", "funding", "open_interest"))
            archive = build_archive(exchange.model_copy(update={"archive": ArchiveConfig(url=f"{sim}/archive/binance")}))
            figures = {}
            for series in ("trades", "mark", "index", "premium", "funding", "open_interest"):
                before = json.load(urllib.request.urlopen(f"{sim}/sim/stats"))
                began = time.perf_counter()
                if series == "funding":
                    report = ingest_funding_days(source, warehouse, instrument, span, now_ms())
                    rows = sum(day.written for day in report.values())
                elif series == "open_interest":
                    report = ingest_open_interest_days(source, warehouse, instrument, span, now_ms(), archive)
                    rows = sum(day.written for day in report.values())
                else:
                    rows = sum(r.written for batch in ingest_days(source, warehouse, instrument, series_code(series, args.interval),
                                                                   span, now_ms(), workers=exchange.fetch_concurrency)
                               for _, r in batch)
                seconds = time.perf_counter() - began
                after = json.load(urllib.request.urlopen(f"{sim}/sim/stats"))
                requests = sum(v - before.get(k, 0) for k, v in after.items()
                               if k.startswith("requests.fapi.") or k == "archive.requests")
                figures[series] = (seconds, requests, rows)
            warehouse.dispose()
    print(f"{args.days} days of BTC/USDT:USDT, {args.interval} klines, on {url.split(':')[0]}")
    print(f"{'series':<14}{'seconds':>10}{'requests':>10}{'rows':>12}")
    for series, (seconds, requests, rows) in figures.items():
        print(f"{series:<14}{seconds:>10.1f}{requests:>10}{rows:>12}")
    total = [sum(f[i] for f in figures.values()) for i in range(3)]
    print(f"{'all':<14}{total[0]:>10.1f}{total[1]:>10}{total[2]:>12}   (trade klines alone: {figures['trades'][0]:.1f} s)")


if __name__ == "__main__":
    main()
