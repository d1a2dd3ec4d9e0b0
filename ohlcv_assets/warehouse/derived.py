"""Derived candles: an interval rolled up in the warehouse from a finer stored one (table
``derived_candles``). The roll-up is one ``INSERT ... SELECT ... GROUP BY`` bucket, the same
statement on PostgreSQL and SQLite: no candle travels through Python.

open = the first source candle's open, high = max, low = min, close = the last one's close;
volume, quote volume, trades and taker volumes summed (NULL where a source candle lacks the value);
VWAP weighted by volume where every source candle has one. Only complete buckets are written: the
caller says which (``expected`` counts from the venue's sessions and its confirmed-empty ranges), and
a bucket whose source candles are not all stored is absent, never written as if complete.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.warehouse.schema import candles, derived_candles
from ohlcv_assets.warehouse.store import Warehouse

SUMMED_EXTRAS = ("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")


def _bucket(step_ms: int):
    return candles.c.open_time - candles.c.open_time % step_ms


def source_counts(warehouse: Warehouse, exchange: str, symbol: str, source: str, step_ms: int,
                  start_ms: int, end_ms: int) -> dict[int, int]:
    """Per derived bucket of [start_ms, end_ms): how many ``source`` candles are stored (one row per
    bucket comes back, not the candles)."""
    bucket = _bucket(step_ms).label("bucket")
    query = (sa.select(bucket, sa.func.count().label("n"))
             .where(candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == source,
                    candles.c.open_time >= start_ms, candles.c.open_time < end_ms)
             .group_by(bucket))
    with warehouse.engine.connect() as conn:
        return {int(b): int(n) for b, n in conn.execute(query)}


def _all_or_null(column, aggregate):
    """The aggregate where every source candle has the value, else NULL (no half-sums)."""
    return sa.case((sa.func.count(column) == sa.func.count(), aggregate), else_=sa.null())


def roll_up(warehouse: Warehouse, exchange: str, symbol: str, interval: str, step_ms: int, source: str,
            start_ms: int, end_ms: int, sourced: list[int], complete: list[int], now_ms: int) -> None:
    """Derives the buckets of [start_ms, end_ms) again, in one transaction (a failure leaves the stored
    ones as they were): the derived candles of the ``sourced`` buckets (those with source candles
    stored) are replaced by the roll-up of the ``complete`` ones; an incomplete bucket's candle is
    gone. A bucket with no source candle stored keeps its derived candle: retention may have dropped
    the finer candles it was built from."""
    c, d = candles.c, derived_candles.c
    with warehouse.engine.begin() as conn:
        if sourced:
            conn.execute(sa.delete(derived_candles).where(
                d.exchange == exchange, d.symbol == symbol, d.timeframe == interval, d.source_timeframe == source,
                d.open_time >= start_ms, d.open_time < end_ms, d.open_time.in_(sourced)))
        if not complete:
            return
        src = (sa.select(c.open_time, *(c[k] for k in CANDLE_COLUMNS[1:]), *(c[k] for k in EXTRA_COLUMNS),
                         _bucket(step_ms).label("bucket"))
               .where(c.exchange == exchange, c.symbol == symbol, c.timeframe == source,
                      c.open_time >= start_ms, c.open_time < end_ms, _bucket(step_ms).in_(complete))
               .cte("src"))
        s = src.c
        agg = (sa.select(s.bucket, sa.func.min(s.open_time).label("first_t"), sa.func.max(s.open_time).label("last_t"),
                         sa.func.max(s.high).label("high"), sa.func.min(s.low).label("low"), sa.func.sum(s.volume).label("volume"),
                         *(_all_or_null(s[k], sa.func.sum(s[k])).label(k) for k in SUMMED_EXTRAS),
                         _all_or_null(s.vwap, sa.case((sa.func.sum(s.volume) > 0, sa.func.sum(s.vwap * s.volume) / sa.func.sum(s.volume)),
                                                      else_=sa.null())).label("vwap"),
                         sa.func.count().label("n"))
               .group_by(s.bucket).cte("agg"))
        first, last = src.alias("first_candle"), src.alias("last_candle")
        a = agg.c
        rows = (sa.select(sa.cast(sa.literal(exchange), sa.String(64)), sa.cast(sa.literal(symbol), sa.String(64)),
                          sa.cast(sa.literal(interval), sa.String(8)), sa.cast(sa.literal(source), sa.String(8)),
                          a.bucket, first.c.open, a.high, a.low, last.c.close, a.volume, *(a[k] for k in SUMMED_EXTRAS),
                          a.vwap, a.n, sa.cast(sa.literal(now_ms), sa.BigInteger))
                .select_from(agg.join(first, first.c.open_time == a.first_t).join(last, last.c.open_time == a.last_t)))
        columns = ["exchange", "symbol", "timeframe", "source_timeframe", "open_time", *CANDLE_COLUMNS[1:],
                   *SUMMED_EXTRAS, "vwap", "source_candles", "derived_at"]
        conn.execute(sa.insert(derived_candles).from_select(columns, rows))


def read_derived(warehouse: Warehouse, exchange: str, symbol: str, interval: str, source: str, start_ms: int, end_ms: int,
                 extras: bool = False) -> pd.DataFrame:
    """The derived candles opening in [start_ms, end_ms), ascending, as ``read_candles`` gives the
    fetched ones (with ``extras``: also the summed extras, VWAP and ``source_candles``)."""
    d = derived_candles.c
    columns = [*CANDLE_COLUMNS, *EXTRA_COLUMNS, "source_candles"] if extras else CANDLE_COLUMNS
    query = (sa.select(*(d[k] for k in columns))
             .where(d.exchange == exchange, d.symbol == symbol, d.timeframe == interval, d.source_timeframe == source,
                    d.open_time >= start_ms, d.open_time < end_ms)
             .order_by(d.open_time))
    with warehouse.engine.connect() as conn:
        return warehouse.dialect.read_frame(conn, query, derived_candles, columns)


def derived_span(warehouse: Warehouse, exchange: str, symbol: str, interval: str, source: str) -> tuple[int, int] | None:
    """(first, last) open time of a derived series, or None when none is stored."""
    d = derived_candles.c
    query = sa.select(sa.func.min(d.open_time), sa.func.max(d.open_time)).where(
        d.exchange == exchange, d.symbol == symbol, d.timeframe == interval, d.source_timeframe == source)
    with warehouse.engine.connect() as conn:
        first, last = conn.execute(query).one()
    return None if first is None else (int(first), int(last))
