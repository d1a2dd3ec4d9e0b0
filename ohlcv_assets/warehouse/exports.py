"""What the file export reads and records: per month the signature of an instrument's candles,
funding settlements or open interest samples (rows, newest fetched_at, first and last open time) and the files written
(``exported_files``), so an export rewrites only the months whose rows changed."""

from __future__ import annotations

import sqlalchemy as sa

from ohlcv_assets.warehouse.funding import FUNDING
from ohlcv_assets.warehouse.open_interest import OPEN_INTEREST
from ohlcv_assets.warehouse.schema import candles, exported_files, funding_rates, open_interest

_EVENT_TABLES = {FUNDING: funding_rates, OPEN_INTEREST: open_interest}  # the series not stored as candles, by their code
from ohlcv_assets.warehouse.store import Warehouse


def month_signatures(warehouse: Warehouse, exchange: str, symbol: str, interval: str) -> dict[str, tuple[int, int, int, int]]:
    """Per month (YYYY-MM): rows, newest fetched_at, first and last open time (one aggregate query) of
    the candles of an interval or series code, or (``funding``, ``oi_5m``) of the funding settlements
    or open interest samples."""
    table = _EVENT_TABLES.get(interval, candles)
    month = warehouse.dialect.month_of(table.c.open_time).label("month")
    query = (sa.select(month, sa.func.count(), sa.func.max(table.c.fetched_at), sa.func.min(table.c.open_time),
                       sa.func.max(table.c.open_time))
             .where(table.c.exchange == exchange, table.c.symbol == symbol, table.c.timeframe == interval)
             .group_by(month))
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f), int(lo), int(hi)) for m, n, f, lo, hi in connection.execute(query)}


def recorded_exports(warehouse: Warehouse, fmt: str, exchange: str, symbol: str, interval: str) -> dict[str, tuple[int, int, str]]:
    """Per month ('' for a whole-history file) exported in ``fmt``: rows and newest fetched_at
    written, and the file's path."""
    t = exported_files.c
    query = sa.select(t.month, t.rows, t.max_fetched_at, t.path).where(
        t.format == fmt, t.exchange == exchange, t.symbol == symbol, t.timeframe == interval)
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f), p) for m, n, f, p in connection.execute(query)}


def record_export(warehouse: Warehouse, fmt: str, exchange: str, symbol: str, interval: str, month: str, path: str,
                  rows: int, max_fetched_at: int, now_ms: int) -> None:
    key = {"format": fmt, "exchange": exchange, "symbol": symbol, "timeframe": interval, "month": month}
    values = {"path": path, "rows": rows, "max_fetched_at": max_fetched_at, "written_ms": now_ms}
    with warehouse.engine.begin() as connection:
        connection.execute(sa.delete(exported_files).where(*(exported_files.c[k] == v for k, v in key.items())))
        connection.execute(sa.insert(exported_files).values(**key, **values))
