"""Writing the ingest's batches: one transaction per batch of whole days (COPY + merge), each
day's source and report recorded, and, from REST, the spans an empty answer covered asked about
again first. The REST path (``days``) and the archive path (``archive_path``) both call
``write_batch`` with the run they belong to (``IngestRun``) and the batch (``Batch``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd

from ohlcv_assets.candle_frame import empty_candles
from ohlcv_assets.core.gaps import FILLABLE, Gap, empty_reason, find_gaps, no_trade_runs, split_by_presence
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms, interval_ms, ms_to_iso
from ohlcv_assets.core.sessions import Sessions
from ohlcv_assets.core.universe import ExchangeConfig, Instrument
from ohlcv_assets.exchange.source import CandleSource, FetchStats, fetch_closed_candles
from ohlcv_assets.ingest.report import DayTodo, PartitionReport
from ohlcv_assets.quality.validation import validate_candles
from ohlcv_assets.venues.series import signed_prices
from ohlcv_assets.warehouse import gap_records, provenance, venue_counters
from ohlcv_assets.warehouse.provenance import REST, DaySource
from ohlcv_assets.warehouse.store import Warehouse

BATCH_CANDLES = 50_000  # a batch of 1m is 34 days: each batch also costs a few queries and Dagster events
ASK_AGAIN_PAUSE_BASES = 2  # the pause before asking again about an empty span, in the venue's retry_base_seconds


@dataclasses.dataclass(frozen=True)
class IngestRun:
    """One instrument and interval being ingested: what every stage of the ingest shares."""

    source: CandleSource  # the venue's REST source (asked again about empty answers)
    warehouse: Warehouse
    instrument: Instrument
    interval: str
    now_ms: int

    @property
    def config(self) -> ExchangeConfig:
        return self.source.config

    @property
    def egress(self) -> str | None:
        """The local address the source's requests leave from (counted per address)."""
        return getattr(self.source, "egress_address", None)


@dataclasses.dataclass
class Batch:
    """Whole days to write in one transaction, with their candles and where they come from."""

    days: list[DayTodo]
    frame: pd.DataFrame
    day_source: DaySource
    started: float  # time.perf_counter() when the batch began (its report's seconds)
    counts: dict = dataclasses.field(default_factory=dict)  # extra report fields (requests, retries...)
    mixed: dict[dt.date, DaySource] = dataclasses.field(default_factory=dict)  # days keeping some stored values
    sides: tuple[int | None, int | None] = (None, None)  # REST: the last candle before the batch, the first after it
    empty_answers: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # REST: spans answered empty
    fetched: FetchStats | None = None  # REST: the requests the batch cost


def suspicious_spans(config: ExchangeConfig, days: list[DayTodo], times, step: int, empty_answers: list[tuple[int, int]],
                     sides: tuple[int | None, int | None], sessions: Sessions | None = None) -> tuple[list[Gap], list[Gap]]:
    """The spans of a batch's days that only an empty answer covered (a hole inside an answer is
    the venue's word, confirmed later by the gap scan; a short answer was followed by another
    request), unless simply no trades (on a venue that omits them, a run shorter than an outage):
    those with a candle of this run on both sides (``sides``: the last candle before the batch,
    the first after it), to ask about again; and those without (at the edge of what the run
    fetched), unexplained. The still-forming end of a day in progress is neither. ``sessions``: the
    instrument's (default: the venue's regular ones)."""
    sessions = sessions or config.sessions
    before, after = sides
    omits, downtime_min_ms = config.profile.omits_empty, config.downtime_min_minutes * MINUTE_MS
    ask, unexplained = [], []
    for d in days:
        day_end = day_bounds_ms(d.day)[1]
        for lo, hi in empty_answers:
            lo, hi = max(lo, d.start), min(hi, d.end)
            if lo >= hi:
                continue
            inside = times[(times >= lo) & (times < hi)]
            for start, end, _ in sessions.clip(find_gaps(inside, lo, hi, step), step).tolist():
                if omits and end - start < downtime_min_ms:
                    continue  # no trades (``no_trade_runs``)
                if end == d.end < day_end:
                    continue  # the day is in progress: its latest candles may still come
                left = bool(len(times) and times[0] < start) or (before is not None and before < start)
                right = bool(len(times) and times[-1] >= end) or after is not None
                (ask if left and right else unexplained).append(Gap(int(start), int(end)))
    return ask, unexplained


def ask_again(source: CandleSource, symbol: str, interval: str, spans: list[Gap], now_ms: int) -> tuple[pd.DataFrame, list[Gap]]:
    """Asks the venue once more about spans its first answers left empty, after a pause (a venue
    that answered 200 with nothing, or too little, for a moment: a lagging replica, a cache):
    what it has now, and the parts still empty in this second answer (confirmed: downtime, or no
    trades on a venue that omits them, as the gap scan confirms them)."""
    step = interval_ms(interval)
    time.sleep(ASK_AGAIN_PAUSE_BASES * source.config.retry_base_seconds)
    omits, downtime_min_ms = source.config.profile.omits_empty, source.config.downtime_min_minutes * MINUTE_MS
    found, confirmed = [], []
    for span in spans:
        frame = fetch_closed_candles(source, symbol, interval, step, span.start_ms, span.end_ms, now_ms)
        found.append(frame)
        _, empty = split_by_presence(span, frame["open_time"].to_numpy(), step)
        confirmed += [Gap(g.start_ms, g.end_ms, empty_reason(g, omits, downtime_min_ms)) for g in empty]
    return pd.concat(found, ignore_index=True) if found else empty_candles(), confirmed


def _in_day(gaps: list[Gap], start: int, end: int, step: int, sessions: Sessions) -> int:
    return sum(sessions.count(max(g.start_ms, start), min(g.end_ms, end), step) for g in gaps
               if max(g.start_ms, start) < min(g.end_ms, end))


def in_window(frame: pd.DataFrame, sessions: Sessions, step: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The candles of the instrument's session window (an equity's regular or extended hours: the
    expected grid), and those outside it, which are not kept (Polygon serves pre-market and
    after-hours bars whatever the window). Around the clock: all of them."""
    if len(frame) == 0 or type(sessions) is Sessions:
        return frame, frame.iloc[0:0]
    times = frame["open_time"].to_numpy()
    inside = np.isin(times, sessions.expected(int(times.min()), int(times.max()) + step, step))
    if inside.all():
        return frame, frame.iloc[0:0]
    return frame[inside].reset_index(drop=True), frame[~inside].reset_index(drop=True)


def write_batch(run: IngestRun, batch: Batch) -> list[tuple[dt.date, PartitionReport]]:
    """Writes a batch of whole days and records each day's source: ``day_source``, or for the days
    in ``mixed`` that source with some candles keeping the stored values (counted as present: their
    values are in ``frame``, the stored ones). From REST (``empty_answers`` given), the spans that empty
    answers covered are first asked about again (``suspicious_spans``, ``ask_again``): what comes now
    is written, what is still empty is recorded as confirmed empty, and what could not be asked
    about (at the edge of the run) is recorded as an open (fillable) gap for the gap loop."""
    config, warehouse, instrument, interval, now_ms = run.config, run.warehouse, run.instrument, run.interval, run.now_ms
    days, frame, day_source, mixed, counts = batch.days, batch.frame, batch.day_source, batch.mixed, batch.counts
    step = interval_ms(interval)
    sessions = config.sessions_of(instrument)
    frame, outside = in_window(frame, sessions, step)
    confirmed: list[Gap] = []
    unexplained: list[Gap] = []
    if batch.empty_answers:
        ask, unexplained = suspicious_spans(config, days, frame["open_time"].to_numpy(), step, list(batch.empty_answers),
                                            batch.sides, sessions)
        if ask:
            found, confirmed = ask_again(run.source, instrument.symbol, interval, ask, now_ms)
            found, more = in_window(found, sessions, step)
            outside = pd.concat([outside, more], ignore_index=True) if len(more) else outside
            if len(found):
                frame = pd.concat([frame, found], ignore_index=True).sort_values("open_time", kind="stable").reset_index(drop=True)
        gap_records.record_confirmed(warehouse, instrument.exchange, instrument.symbol, interval,
                                     confirmed + [Gap(g.start_ms, g.end_ms, FILLABLE) for g in unexplained], step, now_ms)
    validate_candles(frame, step, now_ms, signed_prices(interval))
    bounds = [day_bounds_ms(d.day) for d in days]
    merged, stored = warehouse.merge_candle_days(instrument.exchange, instrument.symbol, interval, frame, bounds, now_ms)
    venue_counters.add(warehouse, instrument.exchange, run.egress, batch.fetched, len(frame), now_ms)
    seconds = round(time.perf_counter() - batch.started, 3)
    recorded: dict[dt.date, DaySource] = {}
    times = frame["open_time"].to_numpy()
    outside_times = outside["open_time"].to_numpy() if len(outside) else None
    reports = []
    for d, (start, end), result, day_stored in zip(days, bounds, merged, stored):
        day_times = times[(times >= start) & (times < end)]
        quiet = []
        if config.profile.omits_empty and d.start < d.end:
            missing = sessions.clip(find_gaps(day_times, d.start, d.end, step), step)
            quiet = no_trade_runs(missing, int(day_times[-1]) if len(day_times) else None, d.end == end,
                                  config.downtime_min_minutes * MINUTE_MS)
            gap_records.record_confirmed(warehouse, instrument.exchange, instrument.symbol, interval, quiet, step, now_ms)
        held = mixed.get(d.day, day_source)
        if d.start < d.end:
            recorded[d.day] = dataclasses.replace(held, candles=len(day_times) - held.kept_candles)
        report = PartitionReport(
            candles_new=result.inserted,
            candles_revised=result.revised,
            candles_unchanged=result.unchanged,
            max_revision_pct=round(100 * result.max_revision, 6),
            candles_fetched=len(day_times),
            expected_candles=d.expected,
            missing_candles=d.expected - len(day_times),
            no_trade_candles=sum(g.candles(step) for g in quiet),
            downtime_candles=_in_day(confirmed, d.start, d.end, step, sessions),
            unexplained_candles=_in_day(unexplained, d.start, d.end, step, sessions),
            seconds=seconds,
            source=held.source if d.start < d.end else "",
            archive_file=day_source.file or "",
            archive_sha256=day_source.sha256 or "",
            note=d.note,
            stored=day_stored,
            **counts,
        )
        if d.note and day_source.source == REST and d.start < d.end:  # why the day came to REST, and what REST did
            report.note += "; fetched from REST" if len(day_times) else "; REST returned none of its candles"
        if len(day_times):
            report.first_open_time = ms_to_iso(int(day_times[0]))
            report.last_open_time = ms_to_iso(int(day_times[-1]))
        not_returned = report.missing_candles - report.no_trade_candles - report.downtime_candles
        if report.no_trade_candles:
            report.note = (report.note + "; " if report.note else "") + f"{report.no_trade_candles} candle(s) had no trades ({instrument.exchange} omits them)"
        if report.downtime_candles:
            report.note = ((report.note + "; " if report.note else "") + f"{report.downtime_candles} candle(s) missing from two "
                           "answers of the exchange (asked again after a pause): confirmed empty")
        if not_returned:
            absent = "were not returned by the exchange" if day_source.source == REST else f"are not in {day_source.describe()}"
            report.note = ((report.note + "; " if report.note else "") + f"{not_returned} expected candle(s) {absent}"
                           + (f" ({report.unexplained_candles} of them in an empty answer at the edge of what this run fetched: "
                              "recorded as a gap to fill)" if report.unexplained_candles else ""))
        left_out = 0 if outside_times is None else int(((outside_times >= start) & (outside_times < end)).sum())
        if left_out:
            report.note = ((report.note + "; " if report.note else "") + f"{left_out} candle(s) outside the instrument's "
                           f"{instrument.session} session ({sessions.name}) not kept")
        if d.end < end:
            report.note = (report.note + "; " if report.note else "") + "day still in progress: closed candles so far"
        reports.append((d.day, report))
    provenance.record_days(warehouse, instrument.exchange, instrument.symbol, interval, recorded, now_ms)
    return reports
