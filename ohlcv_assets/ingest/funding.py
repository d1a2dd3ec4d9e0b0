"""Funding settlements of a perpetual, venue -> warehouse, for a run's days: the settlements of
the range fetched in pages, keyed by their nominal hour (``core.funding``), merged per day; then
each day measured against the schedule the stored settlements follow (with the interval the venue
publishes now), so that a settlement the schedule expects and the warehouse lacks is a gap."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from ohlcv_assets.core.funding import MAX_OFFSET_MS, Segment, expected_times, nominal_times, off_grid, off_the_hour
from ohlcv_assets.archive import load_days
from ohlcv_assets.core.intervals import day_bounds_ms, ms_to_iso, utc_day
from ohlcv_assets.quality.funding_gaps import funding_schedule
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.warehouse import gap_records, provenance
from ohlcv_assets.venues.series import FUNDING_CODE
from ohlcv_assets.warehouse.funding import merge_funding, read_funding


@dataclasses.dataclass(frozen=True)
class FundingDay:
    """One instrument-day of funding settlements after a run."""

    written: int  # new or revised settlements
    stored: int  # settlements stored in the day
    expected: int  # settlements the schedule expects in the day (up to now)
    missing: tuple[int, ...]  # nominal times expected and not stored: the gaps
    off_grid: tuple[int, ...]  # stored settlements the schedule does not expect (kept)
    interval_hours: tuple[int, ...]  # the intervals of the schedule in the day
    outside_cap: tuple[tuple[int, float], ...] = ()  # (nominal time, rate) of settlements beyond the published cap/floor
    cap: tuple[float | None, float | None] = (None, None)  # the published cap and floor checked against (None: none)
    archive_file: str | None = None  # the archive file the day came from (None: REST)
    archive_note: str | None = None  # why the archive did not answer the day, where it was asked

    def as_metadata(self) -> dict:
        meta = {"settlements_written": self.written, "settlements_stored": self.stored,
                "settlements_expected": self.expected, "settlements_missing": len(self.missing),
                "funding_interval_hours": ", ".join(str(h) for h in self.interval_hours) or "none",
                "source": "archive" if self.archive_file else "rest"}
        if self.archive_file:
            meta["archive_file"] = self.archive_file
        if self.archive_note:
            meta["archive_note"] = self.archive_note
        return meta


def archived_settlements(archive, instrument, days: list[dt.date], now_ms: int) -> tuple[list[pd.DataFrame], dict, dict, dict]:
    """The settlements of ``days`` the archive's monthly funding files hold (each file's checksum
    verified, a failing one downloaded again, then a hole REST fills): frames of the settlements,
    the file each answered day came from, why a file's days were not answered, and each loaded
    file's sha256."""
    loaded, files, notes = load_days(archive, instrument.symbol, FUNDING_CODE, days, utc_day(now_ms))
    frames = [pd.DataFrame({"open_time": nominal_times(f.candles["raw_time"].to_numpy()), "raw_time": f.candles["raw_time"].to_numpy(),
                            "rate": f.candles["rate"].to_numpy(), "mark_price": np.nan})  # the files hold no mark price
              for f in loaded]
    return frames, files, notes, {f.file: f.sha256 for f in loaded}


def rest_windows(days: list[dt.date], answered: set[dt.date], now_ms: int) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive days the archive did not answer, and the day after
    the range (the schedule at the range's end is read from the settlements after it)."""
    windows: list[tuple[int, int]] = []
    for day in [d for d in days if d not in answered] + [days[-1] + dt.timedelta(days=1)]:
        start, end = day_bounds_ms(day)
        if start > now_ms:
            continue
        if windows and windows[-1][1] == start:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def ingest_funding_days(source, warehouse, instrument, days: list[dt.date], now_ms: int, archive=None) -> dict[dt.date, FundingDay]:
    """Fetches, stores and measures the instrument's funding settlements of ``days`` (ascending):
    whole months from the ``archive``'s monthly files where it has them, the other days from REST.
    A settlement time further than ``MAX_OFFSET_MS`` from any hour, or two settlements of one hour,
    fail the run naming them (nothing of the batch is written): never a guess at their hour."""
    bounds = [day_bounds_ms(day) for day in days]
    lo, hi = bounds[0][0], min(bounds[-1][1], now_ms + 1)
    frames, files, notes, sha256 = archived_settlements(archive, instrument, days, now_ms) if archive is not None else ([], {}, {}, {})
    for start, end in rest_windows(days, set(files), now_ms):
        rows = source.fetch_funding(instrument.symbol, start - MAX_OFFSET_MS, min(end, now_ms) + MAX_OFFSET_MS - 1)
        frames.append(pd.DataFrame({"open_time": nominal_times(rows[:, 0]), "raw_time": rows[:, 0].astype(np.int64),
                                    "rate": rows[:, 1], "mark_price": rows[:, 2]}))
    fetched = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["raw_time"]).sort_values("raw_time", kind="stable")
    fetched["open_time"] = fetched["open_time"].astype(np.int64)
    fetched["raw_time"] = fetched["raw_time"].astype(np.int64)
    nominal = fetched["open_time"].to_numpy()
    in_days = np.any([(nominal >= start) & (nominal < min(end, hi)) for start, end in bounds], axis=0)  # not the windows' edges
    frame = fetched[in_days].reset_index(drop=True)
    after = fetched["open_time"].to_numpy()[fetched["open_time"].to_numpy() >= hi]
    bad = off_the_hour(frame["raw_time"].to_numpy()) | frame["open_time"].duplicated(keep=False).to_numpy()
    if bad.any():
        offending = frame[bad].assign(raw_time_utc=[ms_to_iso(int(t)) for t in frame["raw_time"][bad]])
        raise CandleValidationError(
            f"{instrument.label()}: {int(bad.sum())} funding settlement(s) not on an hour of their own (more than "
            f"{MAX_OFFSET_MS // 60_000} min off, or two in one hour):\n{offending.to_string(index=False)}", offending)
    merged = merge_funding(warehouse, instrument.exchange, instrument.symbol, frame, bounds, now_ms)
    segments = funding_schedule(source, warehouse, instrument, hi, after)
    stored_rows = read_funding(warehouse, instrument.exchange, instrument.symbol, lo, hi)
    stored, rates = stored_rows["open_time"].to_numpy(), stored_rows["rate"].to_numpy()
    cap = source.funding_cap(instrument.symbol)
    beyond = outside_cap(rates, *cap)
    # settlements a gap scan confirmed the venue never made are not missing (as confirmed-empty candles)
    confirmed = gap_records.confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, FUNDING_CODE)
    report = {}
    for day, (start, end), result in zip(days, bounds, merged):
        in_day = stored[(stored >= start) & (stored < end)]
        expected = expected_times(segments, start, min(end, now_ms + 1))
        expected = expected[~np.any([(expected >= a) & (expected < b) for a, b in confirmed], axis=0)] if confirmed else expected
        report[day] = FundingDay(
            written=result.inserted + result.revised, stored=len(in_day), expected=len(expected),
            missing=tuple(int(t) for t in expected[~np.isin(expected, in_day)]),
            off_grid=tuple(int(t) for t in in_day[off_grid(in_day, segments)]),
            interval_hours=hours_in(segments, start, end), archive_file=files.get(day), archive_note=notes.get(day),
            outside_cap=tuple((int(t), float(r)) for t, r in zip(stored[beyond], rates[beyond]) if start <= t < end), cap=cap)
    holey = [day for day, measured in report.items() if measured.archive_file and measured.missing]
    asked = {day: measured.stored for day, (start, _), measured in zip(days, bounds, report.values())
             if start <= now_ms and day not in holey}  # the days a source was asked for; the holey ones' is the run below
    provenance.record_series_sources(warehouse, instrument.exchange, instrument.symbol, FUNDING_CODE, asked,
                                     {day: file for day, file in files.items() if day in asked}, sha256, now_ms)
    if holey:  # a file lacking settlements the schedule expects (a hole in it): those days from REST too (and recorded so)
        for day, measured in ingest_funding_days(source, warehouse, instrument, holey, now_ms).items():
            lacking = len(report[day].missing)
            report[day] = dataclasses.replace(measured, written=measured.written + report[day].written, archive_note=(
                f"{report[day].archive_file} lacks {lacking} settlement(s) the schedule expects: the day from REST"))
    return report


def outside_cap(rates: np.ndarray, cap: float | None, floor: float | None) -> np.ndarray:
    """Where a rate is above the venue's published cap or below its floor (none published: nowhere)."""
    beyond = np.zeros(len(rates), dtype=bool)
    if cap is not None:
        beyond |= rates > cap
    if floor is not None:
        beyond |= rates < floor
    return beyond


def hours_in(segments: list[Segment], start_ms: int, end_ms: int) -> tuple[int, ...]:
    """The intervals the schedule has in [start_ms, end_ms), ascending."""
    ends = [s.start_ms for s in segments[1:]] + [end_ms]
    return tuple(sorted({s.hours for s, e in zip(segments, ends) if s.start_ms < end_ms and e > start_ms}))
