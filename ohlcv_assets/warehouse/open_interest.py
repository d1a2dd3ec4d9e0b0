"""A perpetual's open interest in the warehouse (table ``open_interest``): written by the merge
every per-candle table shares (keyed by the sample's time, so a re-fetch revises, never
duplicates), read back per instrument."""

from __future__ import annotations

import pandas as pd

from ohlcv_assets.warehouse.schema import open_interest
from ohlcv_assets.warehouse.store import MergeResult, Warehouse

OPEN_INTEREST = "oi_5m"  # the timeframe of every row (``venues.series.OI_CODE``)


def merge_open_interest(warehouse: Warehouse, exchange: str, symbol: str, frame: pd.DataFrame, bounds: list[tuple[int, int]],
                        fetched_at_ms: int) -> list[MergeResult]:
    """Merges samples (columns open_time, amount, value) of the days ``bounds`` ([start, end) each,
    ascending) in one transaction; per day what was new or revised."""
    return warehouse.merge_partitions(open_interest, exchange, symbol, OPEN_INTEREST, frame, bounds, fetched_at_ms)


def read_open_interest(warehouse: Warehouse, exchange: str, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The samples whose time is in [start_ms, end_ms), ascending (open_time, amount, value)."""
    return warehouse.read_rows(open_interest, exchange, symbol, OPEN_INTEREST, start_ms, end_ms)
