"""Where stored candles came from: the source of each instrument-day (an archive file and its
sha256, or REST; a mixed day also names the source whose values some of its candles kept, and how
many), the archive files ingested, one record per file, instrument and interval (a file already
ingested with the same sha256 is not downloaded again; a changed one is re-ingested and counted as
a revision), and the candles on which two sources disagreed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.warehouse.schema import day_sources, source_disagreements, source_files
from ohlcv_assets.warehouse.store import Warehouse

ARCHIVE, REST = "archive", "rest"


@dataclasses.dataclass(frozen=True)
class DaySource:
    """Where a day's candles came from. Two are the same source when source, file and sha256 are;
    the counts say how the day's candles split between this source and the one kept on some."""

    source: str  # ARCHIVE or REST; a mixed day ARCHIVE+REST (or ARCHIVE when the kept values are another file's)
    file: str | None = None
    sha256: str | None = None
    candles: int | None = dataclasses.field(default=None, compare=False)  # the day's candles holding this source's values
    kept_from: str | None = dataclasses.field(default=None, compare=False)  # a mixed day: rest, or the archive file kept on some
    kept_candles: int = dataclasses.field(default=0, compare=False)  # a mixed day: candles holding kept_from's values

    def describe(self) -> str:
        return self.file or self.source

    def holds(self, file: str, sha256: str) -> bool:
        """Whether the day was written from this very file (alone, or mixed with what it kept)."""
        return self.source.startswith(ARCHIVE) and self.file == file and self.sha256 == sha256

    def keeping(self, stored: DaySource | None, candles: int) -> DaySource:
        """This source on a day where ``candles`` candles kept the stored values (of ``stored``: REST,
        another archive file, or unknown for candles stored before sources were recorded)."""
        kind = ARCHIVE if stored is not None and stored.file else (REST if stored is not None else "stored")
        source = self.source if kind == self.source else f"{self.source}+{kind}"
        return dataclasses.replace(self, source=source, kept_from=stored.describe() if stored is not None else "stored",
                                   kept_candles=candles)


@dataclasses.dataclass(frozen=True)
class Disagreement:
    day: dt.date
    source: str  # the incoming archive file
    other: str  # what was stored: rest, or another archive file
    candles: int
    max_diff_pct: float
    first_open_time: int
    kept: str  # "archive" or "stored"


def _instrument(table: sa.Table, exchange: str, symbol: str, interval: str):
    return (table.c.exchange == exchange) & (table.c.symbol == symbol) & (table.c.timeframe == interval)


def record_days(warehouse: Warehouse, exchange: str, symbol: str, interval: str, days: dict[dt.date, DaySource],
                now_ms: int) -> None:
    if not days:
        return
    with warehouse.engine.begin() as conn:
        conn.execute(sa.delete(day_sources).where(_instrument(day_sources, exchange, symbol, interval),
                                                  day_sources.c.day.in_([d.isoformat() for d in days])))
        conn.execute(sa.insert(day_sources), [
            {"exchange": exchange, "symbol": symbol, "timeframe": interval, "day": day.isoformat(), "source": s.source,
             "file": s.file, "sha256": s.sha256, "candles": s.candles, "kept_from": s.kept_from, "kept_candles": s.kept_candles,
             "recorded_ms": now_ms} for day, s in days.items()])


def sources_of(warehouse: Warehouse, exchange: str, symbol: str, interval: str,
               days: list[dt.date] | None = None) -> dict[dt.date, DaySource]:
    query = sa.select(day_sources).where(_instrument(day_sources, exchange, symbol, interval))
    if days is not None:
        query = query.where(day_sources.c.day.in_([d.isoformat() for d in days]))
    with warehouse.engine.connect() as conn:
        return {dt.date.fromisoformat(r.day): DaySource(r.source, r.file, r.sha256, r.candles, r.kept_from, r.kept_candles)
                for r in conn.execute(query)}


def record_file(warehouse: Warehouse, exchange: str, symbol: str, interval: str, file: str, sha256: str, candles: int,
                now_ms: int) -> int:
    """Records a file ingested for an instrument and interval (a Kraken zip serves many: one record
    each); returns its revisions (versions after the first with another sha256)."""
    key = (source_files.c.exchange == exchange) & (source_files.c.file == file) & (source_files.c.symbol == symbol) & (
        source_files.c.timeframe == interval)
    with warehouse.engine.begin() as conn:
        known = conn.execute(sa.select(source_files).where(key)).first()
        if known is None:
            conn.execute(sa.insert(source_files).values(exchange=exchange, file=file, sha256=sha256, symbol=symbol, timeframe=interval,
                                                        candles=candles, revisions=0, first_ingested_ms=now_ms, ingested_ms=now_ms))
            return 0
        revisions = known.revisions + (known.sha256 != sha256)
        conn.execute(sa.update(source_files).where(key).values(sha256=sha256, candles=candles, revisions=revisions, ingested_ms=now_ms))
        return revisions


def record_series_sources(warehouse: Warehouse, exchange: str, symbol: str, series: str, day_rows: dict[dt.date, int],
                          files: dict[dt.date, str], sha256: dict[str, str], now_ms: int) -> None:
    """Where the days of an event series (funding settlements, open interest samples; ``series`` its
    code) came from, recorded as the klines' are: each day of ``day_rows`` (the rows it holds) from
    the archive file ``files`` names for it, with the file's sha256, or else from REST
    (``day_sources``); each file once per instrument and series, with the rows of its days
    (``source_files``)."""
    record_days(warehouse, exchange, symbol, series, {
        day: DaySource(ARCHIVE, files[day], sha256[files[day]], rows) if day in files else DaySource(REST, candles=rows)
        for day, rows in day_rows.items()}, now_ms)
    held: dict[str, int] = {}
    for day, file in files.items():
        held[file] = held.get(file, 0) + day_rows.get(day, 0)
    for file, rows in held.items():
        record_file(warehouse, exchange, symbol, series, file, sha256[file], rows, now_ms)


def files_of(warehouse: Warehouse, exchange: str, symbol: str, interval: str) -> dict[str, tuple[str, int]]:
    """The archive files recorded as ingested for an instrument and interval (or series code): per
    file, the sha256 of the version last ingested and the candles (rows) of its asked days."""
    key = _instrument(source_files, exchange, symbol, interval)
    with warehouse.engine.connect() as conn:
        return {r.file: (r.sha256, int(r.candles)) for r in conn.execute(sa.select(source_files).where(key))}


def record_disagreements(warehouse: Warehouse, exchange: str, symbol: str, interval: str, found: list[Disagreement],
                         now_ms: int) -> None:
    if not found:
        return
    with warehouse.engine.begin() as conn:
        conn.execute(sa.insert(source_disagreements), [
            {"exchange": exchange, "symbol": symbol, "timeframe": interval, "day": d.day.isoformat(), "source": d.source,
             "other": d.other, "candles": d.candles, "max_diff_pct": d.max_diff_pct, "first_open_time": d.first_open_time,
             "kept": d.kept, "detected_ms": now_ms} for d in found])


def disagreements(warehouse: Warehouse, exchange: str | None = None, symbol: str | None = None, interval: str | None = None,
                  days: list[dt.date] | None = None) -> pd.DataFrame:
    """Recorded disagreements (of one instrument and interval, and days, if given), oldest first."""
    query = sa.select(source_disagreements).order_by(source_disagreements.c.id)
    if exchange is not None:
        query = query.where(_instrument(source_disagreements, exchange, symbol, interval))
    if days is not None:
        query = query.where(source_disagreements.c.day.in_([d.isoformat() for d in days]))
    with warehouse.engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in source_disagreements.columns])
