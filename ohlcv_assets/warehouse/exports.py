"""What the file export reads and records: per month the signature of an instrument's candles
(rows, newest fetched_at, first and last open time) and the files written (``exported_files``),
so an export rewrites only the months whose candles changed."""

from __future__ import annotations

import sqlalchemy as sa

from ohlcv_assets.warehouse.schema import candles, exported_files
from ohlcv_assets.warehouse.store import Warehouse


def month_signatures(warehouse: Warehouse, exchange: str, symbol: str, interval: str) -> dict[str, tuple[int, int, int, int]]:
    """Per month (YYYY-MM): rows, newest fetched_at, first and last open time (one aggregate query)."""
    month = warehouse.dialect.month_of(candles.c.open_time).label("month")
    query = (sa.select(month, sa.func.count(), sa.func.max(candles.c.fetched_at), sa.func.min(candles.c.open_time),
                       sa.func.max(candles.c.open_time))
             .where(candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == interval)
             .group_by(month))
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f), int(lo), int(hi)) for m, n, f, lo, hi in connection.execute(query)}


def recorded_exports(warehouse: Warehouse, fmt: str, exchange: str, symbol: str, interval: str) -> dict[str, tuple[int, int]]:
    """Per month ('' for a whole-history file) exported in ``fmt``: rows and newest fetched_at written."""
    t = exported_files.c
    query = sa.select(t.month, t.rows, t.max_fetched_at).where(
        t.format == fmt, t.exchange == exchange, t.symbol == symbol, t.timeframe == interval)
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f)) for m, n, f in connection.execute(query)}


def record_export(warehouse: Warehouse, fmt: str, exchange: str, symbol: str, interval: str, month: str, path: str,
                  rows: int, max_fetched_at: int, now_ms: int) -> None:
    key = {"format": fmt, "exchange": exchange, "symbol": symbol, "timeframe": interval, "month": month}
    values = {"path": path, "rows": rows, "max_fetched_at": max_fetched_at, "written_ms": now_ms}
    with warehouse.engine.begin() as connection:
        connection.execute(sa.delete(exported_files).where(*(exported_files.c[k] == v for k, v in key.items())))
        connection.execute(sa.insert(exported_files).values(**key, **values))
