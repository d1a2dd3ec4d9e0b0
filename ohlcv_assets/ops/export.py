"""Files for backtests: Parquet per instrument, interval and month, and freqtrade's feather layout.
No Dagster here.

Layout under the export directory (``export.directory`` in the universe, default
``$DAGSTER_HOME/export``)::

    parquet/exchange=binance/symbol=BTC-USDT/interval=1m/month=2025-01/candles.parquet
    parquet/exchange=perps/symbol=BTC-USDT_USDT/interval=mark_1h/month=2025-01/candles.parquet
    parquet-funding/exchange=perps/symbol=BTC-USDT_USDT/month=2025-01/funding.parquet
    parquet-oi/exchange=perps/symbol=BTC-USDT_USDT/month=2025-01/open_interest.parquet
    freqtrade/binance/BTC_USDT-1m.feather          (freqtrade --datadir <export>/freqtrade/binance)
    freqtrade/perps/futures/BTC_USDT_USDT-1h-futures.feather        (a perpetual's trade candles)
    freqtrade/perps/futures/BTC_USDT_USDT-1h-mark.feather           (-index, -premiumIndex alike)
    freqtrade/perps/futures/BTC_USDT_USDT-1h-funding_rate.feather
    freqtrade/perps/futures/BTC_USDT_USDT-5m-open_interest.feather

Parquet files hold ``open_time`` (timestamp, ms, UTC) and ``open, high, low, close, volume``
(float64), zstd-compressed, sorted by time; exchange, symbol, interval and month are hive
partition keys, so ``pandas.read_parquet``, ``polars.scan_parquet(..., hive_partitioning=True)``
and DuckDB's ``read_parquet(..., hive_partitioning = true)`` read the tree as one dataset. A
perpetual's mark, index and premium index klines are candles of the same tree under their series
code as the interval (``mark_1h``, ``idx_1h``, ``prem_1h``: what ``load_candles`` and the
``candles/<code>`` assets take). Funding settlements, with other columns (``funding_time``,
``raw_time``: timestamps; ``rate``, ``mark_price``: float64), are a tree of their own,
``parquet-funding``, so that each tree keeps one schema and one set of hive keys; open interest
samples (``sample_time``: timestamp; ``amount``, ``value``: float64, null where the venue gives
none) likewise, ``parquet-oi``.

The feather files are what freqtrade 2026.9's ``FeatherDataHandler`` reads, lz4: a spot pair's
``<pair>-<timeframe>.feather`` (``date, open, high, low, close, volume``); a contract's (a symbol
with a settle currency, ``BTC/USDT:USDT``) ``futures/<pair>-<timeframe>-<candle type>.feather``
with freqtrade's candle types: ``futures`` (trade candles), ``mark``, ``index``, ``premiumIndex``
(OHLCV columns, volume 0) and ``funding_rate`` (``date, funding_rate``: one row per settlement at
its nominal hour, under timeframe ``1h``, the ``funding_fee_timeframe`` freqtrade loads funding
with) and ``open_interest`` (``date, open_interest_amount, open_interest_value``: freqtrade's
``candle_columns.py``; one row per stored sample, under the timeframe they are stored at, ``5m``:
what ``download-data --candle-types open_interest -t 5m`` writes). freqtrade's futures backtests
need the ``1h`` mark and the funding file of every pair.

Incremental: a month (a feather file: the whole history) is written again only when its row
count or its newest ``fetched_at`` changed since the last export (table ``exported_files``); a
revision or a new candle changes ``fetched_at``, a deletion changes the count. Files are written
to a temporary name beside the target and renamed, so a reader never sees half a file. Months
that retention dropped from the warehouse keep their files. A file whose name changed (a
perpetual's trade candles, once written in the spot layout) is removed once written under the new one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ohlcv_assets.core.universe import Instrument, Universe
from ohlcv_assets.venues.series import FUNDING_CODE, OI_CODE, parse_series_code
from ohlcv_assets.warehouse.read import load_candles, load_funding, load_open_interest
from ohlcv_assets.warehouse.exports import month_signatures, record_export, recorded_exports
from ohlcv_assets.warehouse.store import Warehouse

PARQUET, FREQTRADE = "parquet", "freqtrade"
_FREQTRADE_UNSAFE = "/ .@$+:"  # what freqtrade's misc.pair_to_filename replaces by "_"
# freqtrade's CandleType (freqtrade/enums/candletype.py) of a contract's trade candles and of each series
FREQTRADE_CANDLE_TYPE = {"trades": "futures", "mark": "mark", "index": "index", "premium": "premiumIndex",
                         "funding": "funding_rate", "open_interest": "open_interest"}
FREQTRADE_FUNDING_TIMEFRAME = "1h"  # freqtrade's funding_fee_timeframe (every exchange of 2026.9): the file it loads


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


def freqtrade_pair_file(symbol: str, code: str) -> str:
    """freqtrade's own file, relative to its datadir, for the candles of an interval or series code
    (``IDataHandler._pair_data_filename``, ``misc.pair_to_filename``): a spot pair's BTC/USDT, 1m →
    BTC_USDT-1m.feather; a contract's BTC/USDT:USDT, 1h → futures/BTC_USDT_USDT-1h-futures.feather,
    mark_1h → futures/BTC_USDT_USDT-1h-mark.feather, funding → futures/BTC_USDT_USDT-1h-funding_rate.feather,
    oi_5m → futures/BTC_USDT_USDT-5m-open_interest.feather."""
    name = symbol
    for char in _FREQTRADE_UNSAFE:
        name = name.replace(char, "_")
    series, interval = parse_series_code(code)
    if series == "trades" and ":" not in symbol:
        return f"{name}-{interval}.feather"
    return f"futures/{name}-{interval or FREQTRADE_FUNDING_TIMEFRAME}-{FREQTRADE_CANDLE_TYPE[series]}.feather"


def parquet_path(instrument: Instrument, code: str, month: str) -> str:
    """The Parquet file of a month of an interval's or series code's candles, or of funding
    settlements or open interest samples."""
    symbol = instrument.key.split(".", 1)[1]
    where = f"exchange={instrument.exchange}/symbol={symbol}"
    if code == FUNDING_CODE:
        return f"parquet-funding/{where}/month={month}/funding.parquet"
    if code == OI_CODE:
        return f"parquet-oi/{where}/month={month}/open_interest.parquet"
    return f"parquet/{where}/interval={code}/month={month}/candles.parquet"


def _write_atomically(target: Path, write) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target.stat().st_size


def _times(values) -> pa.Array:
    return pa.array(values.to_numpy().astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC"))


def _table(frame, time_column: str) -> pa.Table:
    return pa.table({
        time_column: _times(frame["open_time"]),
        **{c: pa.array(frame[c].to_numpy(), type=pa.float64()) for c in ("open", "high", "low", "close", "volume")},
    })


def _funding_table(frame, fmt: str) -> pa.Table:
    """Settlements as Parquet (``funding_time, raw_time, rate, mark_price``) or as freqtrade's
    funding_rate candles (``date, funding_rate``: freqtrade's candle_columns.py)."""
    if fmt == FREQTRADE:
        return pa.table({"date": _times(frame["funding_time"]), "funding_rate": pa.array(frame["rate"].to_numpy(), type=pa.float64())})
    return pa.table({"funding_time": _times(frame["funding_time"]), "raw_time": _times(frame["raw_time"]),
                     **{c: pa.array(frame[c].to_numpy(), type=pa.float64()) for c in ("rate", "mark_price")}})


def _open_interest_table(frame, fmt: str) -> pa.Table:
    """Samples as Parquet (``sample_time, amount, value``) or as freqtrade's open_interest candles
    (``date, open_interest_amount, open_interest_value``: freqtrade's candle_columns.py)."""
    time_column, names = ("date", "open_interest_") if fmt == FREQTRADE else ("sample_time", "")
    return pa.table({time_column: _times(frame["sample_time"]),
                     **{f"{names}{c}": pa.array(frame[c].to_numpy(), type=pa.float64()) for c in ("amount", "value")}})


def _export_file(warehouse: Warehouse, directory: Path, fmt: str, instrument: Instrument, code: str, month: str,
                 path: str, bounds: tuple[int, int], fetched: int, now_ms: int, report: ExportReport) -> None:
    """Writes one file of the candles (settlements, samples) opening in [bounds), records it and counts it."""
    if code == FUNDING_CODE:
        frame = load_funding(instrument.exchange, instrument.symbol, *bounds, warehouse=warehouse, strict=False)
        table = _funding_table(frame, fmt)
    elif code == OI_CODE:
        frame = load_open_interest(instrument.exchange, instrument.symbol, *bounds, warehouse=warehouse, strict=False)
        table = _open_interest_table(frame, fmt)
    else:
        frame = load_candles(instrument.exchange, instrument.symbol, code, *bounds, warehouse=warehouse, strict=False)
        table = _table(frame, "open_time" if fmt == PARQUET else "date")
    if fmt == PARQUET:
        report.bytes_written += _write_atomically(directory / path, lambda p: pq.write_table(table, p, compression="zstd"))
    else:
        report.bytes_written += _write_atomically(directory / path, lambda p: feather.write_feather(table, p, compression="lz4"))
    record_export(warehouse, fmt, instrument.exchange, instrument.symbol, code, month, path, len(frame), fetched, now_ms)
    report.files_written += 1
    report.rows_written += len(frame)
    report.written.append(path)


def _unchanged(recorded: tuple[int, int, str] | None, rows: int, fetched: int, target: Path) -> bool:
    return recorded is not None and recorded[:2] == (rows, fetched) and target.exists()


def _forget_moved(directory: Path, recorded: tuple[int, int, str] | None, path: str) -> None:
    """Removes the file the export wrote before under another name (now written as ``path``)."""
    if recorded is not None and recorded[2] != path:
        (directory / recorded[2]).unlink(missing_ok=True)


def export_instrument(warehouse: Warehouse, directory: Path, instrument: Instrument, code: str, formats: tuple[str, ...],
                      now_ms: int, report: ExportReport) -> None:
    """Exports one interval's or series code's candles (``funding``: settlements; ``oi_5m``: open
    interest samples) of an instrument."""
    months = month_signatures(warehouse, instrument.exchange, instrument.symbol, code)
    if not months:
        return
    if PARQUET in formats:
        recorded = recorded_exports(warehouse, PARQUET, instrument.exchange, instrument.symbol, code)
        for month, (rows, fetched, first, last) in sorted(months.items()):
            path = parquet_path(instrument, code, month)
            if _unchanged(recorded.get(month), rows, fetched, directory / path):
                report.files_unchanged += 1
                continue
            _export_file(warehouse, directory, PARQUET, instrument, code, month, path, (first, last + 1), fetched,
                         now_ms, report)
    if FREQTRADE in formats:
        rows = sum(m[0] for m in months.values())
        fetched = max(m[1] for m in months.values())
        path = f"freqtrade/{instrument.exchange}/{freqtrade_pair_file(instrument.symbol, code)}"
        recorded = recorded_exports(warehouse, FREQTRADE, instrument.exchange, instrument.symbol, code).get("")
        if _unchanged(recorded, rows, fetched, directory / path):
            report.files_unchanged += 1
            return
        bounds = (min(m[2] for m in months.values()), max(m[3] for m in months.values()) + 1)
        _export_file(warehouse, directory, FREQTRADE, instrument, code, "", path, bounds, fetched, now_ms, report)
        _forget_moved(directory, recorded, path)


def export_universe(universe: Universe, warehouse: Warehouse, directory: Path, now_ms: int) -> ExportReport:
    """Exports every instrument's intervals and series (``Instrument.series_codes``) in the configured formats."""
    report = ExportReport()
    for instrument in universe.instruments:
        for code in (*instrument.intervals, *instrument.series_codes):
            export_instrument(warehouse, directory, instrument, code, universe.export.formats, now_ms, report)
    return report
