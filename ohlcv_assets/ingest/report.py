"""What a run does for one instrument-day: the day to fetch, and the report shown as its
materialization metadata. Shared by the REST and archive paths of the ingest."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd


@dataclasses.dataclass
class DayTodo:
    """A day of the run with candles to fetch in [start, end) (end is its closed part)."""

    day: dt.date
    start: int
    end: int  # exclusive end of what can be fetched: the day's end or the last closed candle's end
    expected: int
    note: str = ""  # why the day came to this source (an archive file that could not answer it, and why): what was done only


@dataclasses.dataclass
class PartitionReport:
    """What a run did for one instrument-day, shown as materialization metadata. Every fetched
    candle is new, revised (stored with other values before) or unchanged; a re-fetch of a stored
    day is mostly unchanged. The request counts and seconds are those of the batch the day was
    written in (``batch_days`` days)."""

    candles_fetched: int = 0
    candles_new: int = 0
    candles_revised: int = 0
    candles_unchanged: int = 0
    max_revision_pct: float = 0.0
    expected_candles: int = 0
    missing_candles: int = 0
    no_trade_candles: int = 0  # of the missing ones: intervals an omitting venue (Kraken, ...) had no trades in
    downtime_candles: int = 0  # of the missing ones: empty in two answers of the venue (asked again after a pause)
    unexplained_candles: int = 0  # of the missing ones: only an empty answer at the edge of the run covered them (a gap to fill)
    delisted: str = ""  # the venue stopped trading the instrument: its last candle's end
    source: str = ""  # archive or rest: where the day's candles came from; archive+rest: a file's, some kept from REST (note)
    archive_file: str = ""
    archive_sha256: str = ""
    sources_disagreeing: int = 0  # candles the archive and the stored candles disagreed on (see source_disagreements)
    first_open_time: str = ""
    last_open_time: str = ""
    batch_days: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    seconds: float = 0.0
    note: str = ""
    # the day's candles as its write left them stored (None: not written by this run): what the
    # checks read back otherwise; not metadata
    stored: pd.DataFrame | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def written(self) -> int:
        """Candles this run changed in the warehouse (new or revised)."""
        return self.candles_new + self.candles_revised

    def as_metadata(self) -> dict:
        return {f.name: value for f in dataclasses.fields(self) if f.name != "stored"
                for value in [getattr(self, f.name)] if value != ""}
