"""A perpetual's funding rate settlements in the warehouse (table ``funding_rates``): written by the
merge every per-candle table shares (keyed by the nominal settlement time, so a re-fetch revises,
never duplicates), read back per instrument."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.warehouse.schema import funding_rates
from ohlcv_assets.warehouse.store import MergeResult, Warehouse

FUNDING = "funding"  # the timeframe of every row (``venues.series.FUNDING_CODE``)


def merge_funding(warehouse: Warehouse, exchange: str, symbol: str, frame: pd.DataFrame, bounds: list[tuple[int, int]],
                  fetched_at_ms: int) -> list[MergeResult]:
    """Merges settlements (columns open_time = nominal time, raw_time, rate, mark_price) of the
    days ``bounds`` ([start, end) each, ascending) in one transaction; per day what was new or revised."""
    return warehouse.merge_partitions(funding_rates, exchange, symbol, FUNDING, frame, bounds, fetched_at_ms)


def read_funding(warehouse: Warehouse, exchange: str, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The settlements whose nominal time is in [start_ms, end_ms), ascending (open_time, raw_time, rate, mark_price)."""
    return warehouse.read_rows(funding_rates, exchange, symbol, FUNDING, start_ms, end_ms)


def delete_funding(warehouse: Warehouse, exchange: str, symbol: str, start_ms: int, end_ms: int) -> int:
    """Deletes the settlements whose nominal time is in [start_ms, end_ms); returns how many. For an
    operator's repair, as ``Warehouse.delete_candles``: the runs never delete."""
    with warehouse.engine.begin() as connection:
        return connection.execute(sa.delete(funding_rates).where(
            funding_rates.c.exchange == exchange, funding_rates.c.symbol == symbol, funding_rates.c.timeframe == FUNDING,
            funding_rates.c.open_time >= start_ms, funding_rates.c.open_time < end_ms)).rowcount
