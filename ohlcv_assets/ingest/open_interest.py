"""A perpetual's open interest, venue -> warehouse, for a run's days, at the venue's resolution (5
minutes, ``venues.series.OI_CODE``): the days REST still serves from REST (Binance's
``openInterestHist``: the latest 30 days, ``VenueProfile.open_interest_history_days``), older ones
from the archive's daily ``metrics`` files (each verified by its checksum) where the universe
configures the archive. What neither serves is never asked for: it is recorded as a gap
``beyond_history`` (unfillable), as Kraken's 720-candle horizon is, and the day says so. A venue
that states no horizon (a generic ccxt venue) and refuses a window as too old is probed for the
oldest time it serves (``open_interest_served_since``); what it refuses is beyond its history
too, and the run stores the rest."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from ohlcv_assets.archive import load_days
from ohlcv_assets.core.gaps import BEYOND_HISTORY, Gap
from ohlcv_assets.core.intervals import day_bounds_ms, grid_ceil, interval_ms, ms_to_iso, utc_day
from ohlcv_assets.exchange.source import PermanentFetchError, open_interest_horizon_ms, open_interest_served_since
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.venues.series import OI_CODE, OI_PERIOD
from ohlcv_assets.warehouse import gap_records, provenance
from ohlcv_assets.warehouse.open_interest import merge_open_interest, read_open_interest

STEP_MS = interval_ms(OI_PERIOD)


@dataclasses.dataclass(frozen=True)
class OpenInterestDay:
    """One instrument-day of open interest after a run."""

    written: int  # new or revised samples
    stored: int  # samples stored in the day
    expected: int  # samples the day holds up to now, from where the venue still serves them
    beyond_history: int  # samples of the day older than REST serves and not in the archive: never asked for
    archive_file: str | None = None
    archive_note: str | None = None

    def as_metadata(self) -> dict:
        meta = {"samples_written": self.written, "samples_stored": self.stored, "samples_expected": self.expected,
                "samples_missing": max(0, self.expected - self.stored), "samples_beyond_history": self.beyond_history,
                "source": "archive" if self.archive_file else "rest" if self.expected else "none"}
        if self.archive_file:
            meta["archive_file"] = self.archive_file
        if self.archive_note:
            meta["archive_note"] = self.archive_note
        return meta


def rest_horizon_ms(profile, now_ms: int) -> int | None:
    """The oldest sample time REST is asked for (None: all of history)."""
    return open_interest_horizon_ms(profile, STEP_MS, now_ms)


def archived_samples(archive, instrument, days: list[dt.date], now_ms: int) -> tuple[list[pd.DataFrame], dict, dict, dict]:
    """The samples the archive's daily metrics files hold for ``days`` (each verified, a failing one
    downloaded again, then a hole): frames, the file of each answered day, why a day was not, and
    each loaded file's sha256."""
    loaded, files, notes = load_days(archive, instrument.symbol, OI_CODE, days, utc_day(now_ms))
    return [f.candles for f in loaded], files, notes, {f.file: f.sha256 for f in loaded}


def ingest_open_interest_days(source, warehouse, instrument, days: list[dt.date], now_ms: int,
                              archive=None) -> dict[dt.date, OpenInterestDay]:
    """Fetches, stores and measures the instrument's open interest of ``days`` (ascending). A
    sample off the 5-minute grid fails the run naming it (nothing of the batch is written)."""
    bounds = [day_bounds_ms(day) for day in days]
    horizon = rest_horizon_ms(source.config.profile, now_ms)
    old = [day for day, (start, _) in zip(days, bounds) if horizon is not None and start < horizon]
    frames, files, notes, sha256 = archived_samples(archive, instrument, old, now_ms) if archive is not None and old else ([], {}, {}, {})
    windows: list[tuple[int, int]] = []
    for day, (start, end) in zip(days, bounds):
        if day in files:
            continue
        lo, hi = max(start, horizon if horizon is not None else start), min(end, now_ms + 1)
        if lo >= hi:
            continue
        if windows and windows[-1][1] == lo:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    for lo, hi in windows:
        try:
            rows = source.fetch_open_interest(instrument.symbol, OI_PERIOD, lo, hi - 1)
        except PermanentFetchError:  # older than a venue that states no horizon serves? what it serves is stored
            served = open_interest_served_since(source, instrument.symbol, OI_PERIOD, lo, now_ms + 1)
            if served is None:
                raise
            horizon = served if horizon is None else max(horizon, served)
            if served >= hi:
                continue
            rows = source.fetch_open_interest(instrument.symbol, OI_PERIOD, served, hi - 1)
        frames.append(pd.DataFrame({"open_time": rows[:, 0].astype(np.int64), "amount": rows[:, 1], "value": rows[:, 2]}))
    fetched = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"open_time": np.zeros(0, dtype=np.int64),
                                                                                 "amount": [], "value": []}))
    fetched = fetched.drop_duplicates(subset=["open_time"], keep="last").sort_values("open_time", kind="stable")
    times = fetched["open_time"].to_numpy()
    in_days = np.any([(times >= start) & (times < end) for start, end in bounds], axis=0) if len(times) else np.zeros(0, bool)
    frame = fetched[in_days].reset_index(drop=True)
    off = (frame["open_time"].to_numpy() % STEP_MS) != 0
    if off.any():
        offending = frame[off].assign(time_utc=[ms_to_iso(int(t)) for t in frame["open_time"][off]])
        raise CandleValidationError(f"{instrument.label()}: {int(off.sum())} open interest sample(s) off the "
                                    f"{OI_PERIOD} grid:\n{offending.to_string(index=False)}", offending)
    merged = merge_open_interest(warehouse, instrument.exchange, instrument.symbol, frame, bounds, now_ms)
    stored = read_open_interest(warehouse, instrument.exchange, instrument.symbol, bounds[0][0], bounds[-1][1])["open_time"].to_numpy()
    # samples a gap scan confirmed the venue never had (exchange_downtime) are not expected (as confirmed-empty candles)
    confirmed = gap_records.confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, OI_CODE)
    report, beyond = {}, []
    for day, (start, end), result in zip(days, bounds, merged):
        settled = min(end, now_ms // STEP_MS * STEP_MS + STEP_MS)  # a sample at t exists once t has come
        served_from = start if day in files or horizon is None else max(start, horizon)
        first = grid_ceil(served_from, STEP_MS)
        expected = max(0, (settled - first + STEP_MS - 1) // STEP_MS)
        expected -= sum(max(0, (min(b, settled) - max(grid_ceil(a, STEP_MS), first) + STEP_MS - 1) // STEP_MS) for a, b in confirmed)
        unserved = max(0, (min(served_from, settled) - start) // STEP_MS)
        if unserved:
            beyond.append(Gap(start, min(served_from, settled), BEYOND_HISTORY))
        report[day] = OpenInterestDay(written=result.inserted + result.revised,
                                      stored=int(((stored >= start) & (stored < end)).sum()), expected=expected,
                                      beyond_history=unserved, archive_file=files.get(day), archive_note=notes.get(day))
    gap_records.record_confirmed(warehouse, instrument.exchange, instrument.symbol, OI_CODE, beyond, STEP_MS, now_ms)
    served = {day: measured.stored for day, measured in report.items() if day in files or measured.expected}  # asked of a source
    provenance.record_series_sources(warehouse, instrument.exchange, instrument.symbol, OI_CODE, served, files, sha256, now_ms)
    return report
