"""The per-day candle counts (``candle_days``) that ``ohlcv-status`` reads instead of counting every
candle: after ingests, re-fetches (revised and new candles), concurrent writers of the same candles,
an operator's delete, retention and an upgrade of a warehouse that already holds candles, they equal
a real ``COUNT(*)`` (and min/max) of the candles."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

from ohlcv_assets.warehouse import retirement
from ohlcv_assets.warehouse.candle_days import Stored
from ohlcv_assets.warehouse.partitioning import span_of
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import merge_candles

MINUTE_MS, DAY_MS = 60_000, 86_400_000
DAY = 1_790_000_000_000 // DAY_MS * DAY_MS


def frame(first_minute: int, n: int, price: float = 100.0) -> pd.DataFrame:
    t = DAY + (first_minute + np.arange(n, dtype=np.int64)) * MINUTE_MS
    p = price + np.arange(n) % 7 * 0.01
    return pd.DataFrame({"open_time": t, "open": p, "high": p + 1, "low": p - 1, "close": p, "volume": np.full(n, 2.0)})


def write(wh: Warehouse, symbol: str, f: pd.DataFrame, fetched: int = 1):
    start = int(f["open_time"].min()) // DAY_MS * DAY_MS
    end = (int(f["open_time"].max()) // DAY_MS + 1) * DAY_MS
    bounds = [(d, d + DAY_MS) for d in range(start, end, DAY_MS)]
    return wh.merge_partitions(candles, "binance", symbol, "1m", f, bounds, fetched)


def counted(wh: Warehouse) -> dict[tuple[str, str, str], Stored]:
    """The truth: COUNT(*), min and max over every stored candle."""
    c = candles.c
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(c.exchange, c.symbol, c.timeframe, sa.func.count(), sa.func.min(c.open_time),
                                      sa.func.max(c.open_time)).group_by(c.exchange, c.symbol, c.timeframe)).all()
    return {(e, s, i): Stored(int(n), int(lo), int(hi)) for e, s, i, n, lo, hi in rows}


def test_counts_equal_a_count_of_the_candles_after_ingests_refetches_deletes_and_retention(warehouse):
    write(warehouse, "BTC/USDT", frame(0, 3 * 1440))  # three whole days
    write(warehouse, "ETH/USDT", frame(600, 900))  # part of one day
    assert warehouse.stored_counts() == counted(warehouse) != {}
    assert warehouse.stored_counts()[("binance", "BTC/USDT", "1m")] == Stored(3 * 1440, DAY, DAY + (3 * 1440 - 1) * MINUTE_MS)

    # a re-fetch: the same candles (nothing new), revised values, and new candles on both sides
    write(warehouse, "BTC/USDT", frame(0, 3 * 1440), fetched=2)
    result = write(warehouse, "ETH/USDT", pd.concat([frame(300, 300), frame(600, 900, price=101.0), frame(1500, 60)]), fetched=3)
    assert (sum(r.inserted for r in result), sum(r.revised for r in result)) == (300 + 60, 900)
    assert warehouse.stored_counts() == counted(warehouse)
    assert warehouse.stored_counts()[("binance", "ETH/USDT", "1m")].n == 1260

    # an operator's delete inside a day, and one of whole days
    assert warehouse.delete_candles("binance", "BTC/USDT", "1m", DAY + 1440 * MINUTE_MS, DAY + 1500 * MINUTE_MS) == 60
    assert warehouse.delete_candles("binance", "ETH/USDT", "1m", DAY, DAY + 2 * DAY_MS) == 1260
    assert warehouse.stored_counts() == counted(warehouse)
    assert ("binance", "ETH/USDT", "1m") not in warehouse.stored_counts()

    # retention drops the span (a month of 1m) holding the first days
    span = span_of("1m", DAY)
    write(warehouse, "ETH/USDT", frame((span.end_ms - DAY) // MINUTE_MS, 120))  # the next month: kept
    stored = retirement.instruments_in_span(warehouse, "1m", span)
    retirement.drop_span(warehouse, "1m", span, stored, now_ms=1)
    assert warehouse.stored_counts() == counted(warehouse)
    assert warehouse.stored_counts() == {("binance", "ETH/USDT", "1m"): Stored(120, span.end_ms, span.end_ms + 119 * MINUTE_MS)}


def test_concurrent_writers_of_the_same_candles_count_each_once(warehouse):
    """Two writers merge overlapping candles at once (on PostgreSQL a writer whose COPY meets the
    other's rows fails on the key and retries, as a run's step would): each candle counted once."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(offset: int, price: float) -> None:
        try:
            start.wait()
            for attempt in range(5):
                try:
                    for i in range(0, 2880, 240):
                        write(warehouse, "BTC/USDT", frame(offset + i, 300, price=price), fetched=offset + i + 1)
                    return
                except (sa.exc.IntegrityError, psycopg.errors.UniqueViolation):  # the COPY met the other's rows
                    continue
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(o, p)) for o, p in ((0, 100.0), (120, 101.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert warehouse.stored_counts() == counted(warehouse)
    assert warehouse.stored_counts()[("binance", "BTC/USDT", "1m")].n == 120 + 2880 + 60


def test_upgrading_a_warehouse_holding_candles_counts_them(warehouse_url):
    old = Warehouse(warehouse_url)
    try:
        old.migrate("0012")
        rows = frame(0, 1500).assign(exchange="kraken", symbol="BTC/USD", timeframe="1m", fetched_at=1)
        with old.engine.begin() as conn:
            old.ensure_partitions("candles", "1m", DAY, DAY + 2 * DAY_MS)
            conn.execute(sa.insert(candles), rows.to_dict("records"))
        old.migrate()
        assert old.stored_counts() == counted(old) == {("kraken", "BTC/USD", "1m"): Stored(1500, DAY, DAY + 1499 * MINUTE_MS)}
        merge_candles(old, "kraken", "BTC/USD", "1m", frame(1400, 200), DAY + DAY_MS, DAY + 2 * DAY_MS, 2)
        assert old.stored_counts() == counted(old)
    finally:
        old.dispose()
