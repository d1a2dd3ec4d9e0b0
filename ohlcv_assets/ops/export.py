"""Files for backtests: Parquet per instrument, interval and month, and freqtrade's feather layout.
No Dagster here.

Layout under the export directory (``export.directory`` in the universe, default
``$DAGSTER_HOME/export``)::

    parquet/exchange=binance/symbol=BTC-USDT/interval=1m/month=2025-01/candles.parquet
    freqtrade/binance/BTC_USDT-1m.feather          (freqtrade --datadir <export>/freqtrade/binance)

Parquet files hold ``open_time`` (timestamp, ms, UTC) and ``open, high, low, close, volume``
(float64), zstd-compressed, sorted by time; exchange, symbol, interval and month are hive
partition keys, so ``pandas.read_parquet``, ``polars.scan_parquet(..., hive_partitioning=True)``
and DuckDB's ``read_parquet(..., hive_partitioning = true)`` read the tree as one dataset. The
feather files are what freqtrade's ``FeatherDataHandler`` reads (``date, open, high, low, close,
volume``, lz4).

Incremental: a month (a feather file: the whole history) is written again only when its row
count or its newest ``fetched_at`` changed since the last export (table ``exported_files``); a
revision or a new candle changes ``fetched_at``, a deletion changes the count. Files are written
to a temporary name beside the target and renamed, so a reader never sees half a file. Months
that retention dropped from the warehouse keep their files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import sqlalchemy as sa

from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.core.universe import Instrument, Universe
from ohlcv_assets.warehouse.schema import candles, exported_files
from ohlcv_assets.warehouse.store import Warehouse

PARQUET, FREQTRADE = "parquet", "freqtrade"
_FREQTRADE_UNSAFE = "/ .@$+:"


@dataclasses.dataclass
class ExportReport:
    files_written: int = 0
    files_unchanged: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    written: list[str] = dataclasses.field(default_factory=list)

    def as_metadata(self) -> dict:
        return {"files_written": self.files_written, "files_unchanged": self.files_unchanged,
                "rows_written": self.rows_written, "bytes_written": self.bytes_written}


def freqtrade_pair_file(symbol: str, interval: str) -> str:
    """freqtrade's own file name for a spot pair (``misc.pair_to_filename``): BTC/USDT → BTC_USDT-1m.feather."""
    name = symbol
    for char in _FREQTRADE_UNSAFE:
        name = name.replace(char, "_")
    return f"{name}-{interval}.feather"


def parquet_path(instrument: Instrument, interval: str, month: str) -> str:
    symbol = instrument.key.split(".", 1)[1]
    return f"parquet/exchange={instrument.exchange}/symbol={symbol}/interval={interval}/month={month}/candles.parquet"


def _month_expression(dialect: str):
    seconds = candles.c.open_time / 1000
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", sa.func.to_timestamp(seconds)), "YYYY-MM")
    return sa.func.strftime("%Y-%m", sa.cast(candles.c.open_time / 1000, sa.Integer), "unixepoch")


def month_signatures(warehouse: Warehouse, exchange: str, symbol: str, interval: str) -> dict[str, tuple[int, int, int, int]]:
    """Per month (YYYY-MM): rows, newest fetched_at, first and last open time (one aggregate query)."""
    month = _month_expression(warehouse.engine.dialect.name).label("month")
    query = (sa.select(month, sa.func.count(), sa.func.max(candles.c.fetched_at), sa.func.min(candles.c.open_time),
                       sa.func.max(candles.c.open_time))
             .where(candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == interval)
             .group_by(month))
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f), int(lo), int(hi)) for m, n, f, lo, hi in connection.execute(query)}


def _recorded(warehouse: Warehouse, fmt: str, instrument: Instrument, interval: str) -> dict[str, tuple[int, int]]:
    t = exported_files.c
    query = sa.select(t.month, t.rows, t.max_fetched_at).where(
        t.format == fmt, t.exchange == instrument.exchange, t.symbol == instrument.symbol, t.timeframe == interval)
    with warehouse.engine.connect() as connection:
        return {m: (int(n), int(f)) for m, n, f in connection.execute(query)}


def _record(warehouse: Warehouse, fmt: str, instrument: Instrument, interval: str, month: str, path: str,
            rows: int, max_fetched_at: int, now_ms: int) -> None:
    key = {"format": fmt, "exchange": instrument.exchange, "symbol": instrument.symbol, "timeframe": interval, "month": month}
    values = {"path": path, "rows": rows, "max_fetched_at": max_fetched_at, "written_ms": now_ms}
    with warehouse.engine.begin() as connection:
        connection.execute(sa.delete(exported_files).where(*(exported_files.c[k] == v for k, v in key.items())))
        connection.execute(sa.insert(exported_files).values(**key, **values))


def _write_atomically(target: Path, write) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target.stat().st_size


def _table(frame, time_column: str) -> pa.Table:
    return pa.table({
        time_column: pa.array(frame["open_time"].to_numpy().astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
        **{c: pa.array(frame[c].to_numpy(), type=pa.float64()) for c in ("open", "high", "low", "close", "volume")},
    })


def _export_file(warehouse: Warehouse, directory: Path, fmt: str, instrument: Instrument, interval: str, month: str,
                 path: str, bounds: tuple[int, int], fetched: int, now_ms: int, report: ExportReport) -> None:
    """Writes one file of the candles opening in [bounds), records it and counts it."""
    frame = load_candles(instrument.exchange, instrument.symbol, interval, *bounds, warehouse=warehouse, strict=False)
    if fmt == PARQUET:
        table = _table(frame, "open_time")
        report.bytes_written += _write_atomically(directory / path, lambda p: pq.write_table(table, p, compression="zstd"))
    else:
        table = _table(frame, "date")
        report.bytes_written += _write_atomically(directory / path, lambda p: feather.write_feather(table, p, compression="lz4"))
    _record(warehouse, fmt, instrument, interval, month, path, len(frame), fetched, now_ms)
    report.files_written += 1
    report.rows_written += len(frame)
    report.written.append(path)


def export_instrument(warehouse: Warehouse, directory: Path, instrument: Instrument, interval: str, formats: tuple[str, ...],
                      now_ms: int, report: ExportReport) -> None:
    months = month_signatures(warehouse, instrument.exchange, instrument.symbol, interval)
    if not months:
        return
    if PARQUET in formats:
        recorded = _recorded(warehouse, PARQUET, instrument, interval)
        for month, (rows, fetched, first, last) in sorted(months.items()):
            path = parquet_path(instrument, interval, month)
            if recorded.get(month) == (rows, fetched) and (directory / path).exists():
                report.files_unchanged += 1
                continue
            _export_file(warehouse, directory, PARQUET, instrument, interval, month, path, (first, last + 1), fetched,
                         now_ms, report)
    if FREQTRADE in formats:
        rows = sum(m[0] for m in months.values())
        fetched = max(m[1] for m in months.values())
        path = f"freqtrade/{instrument.exchange}/{freqtrade_pair_file(instrument.symbol, interval)}"
        if _recorded(warehouse, FREQTRADE, instrument, interval).get("") == (rows, fetched) and (directory / path).exists():
            report.files_unchanged += 1
            return
        bounds = (min(m[2] for m in months.values()), max(m[3] for m in months.values()) + 1)
        _export_file(warehouse, directory, FREQTRADE, instrument, interval, "", path, bounds, fetched, now_ms, report)


def export_universe(universe: Universe, warehouse: Warehouse, directory: Path, now_ms: int) -> ExportReport:
    """Exports every instrument and interval of the universe in the configured formats."""
    report = ExportReport()
    for instrument in universe.instruments:
        for interval in instrument.intervals:
            export_instrument(warehouse, directory, instrument, interval, universe.export.formats, now_ms, report)
    return report
