"""Ingesting instrument-days: fetch closed candles, validate, merge. No Dagster here.

A ranged run (many days of one instrument) is one stream: the range is cut into page-sized
request windows, fetched ``fetch_concurrency`` at a time inside the exchange's shared budget, and
written in batches of whole days, each batch one transaction (COPY + merge). At most a batch and
the windows in flight are in memory, whatever the length of the range.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from ohlcv_assets.archive import CandleArchive
from ohlcv_assets.ingest.archive_path import ArchiveStage
from ohlcv_assets.core.candle_frame import empty_candles
from ohlcv_assets.ingest.report import DayTodo, PartitionReport
from ohlcv_assets.exchange.source import (
    CandleSource,
    FetchStats,
    NotListed,
    fetch_closed_candles,
    history_start_ms,
)
from ohlcv_assets.core.gaps import FILLABLE, Gap, empty_reason, find_gaps, no_trade_runs, split_by_presence
from ohlcv_assets.core.intervals import (
    DAY_MS,
    MINUTE_MS,
    day_bounds_ms,
    interval_ms,
    ms_to_iso,
)
from ohlcv_assets.core.universe import ExchangeConfig, Instrument
from ohlcv_assets.quality.validation import validate_candles
from ohlcv_assets.warehouse import delistings, gap_records, sources, venue_counters
from ohlcv_assets.warehouse.delistings import Delisting
from ohlcv_assets.warehouse.sources import REST, DaySource
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse

BATCH_CANDLES = 50_000  # a batch of 1m is 34 days: each batch also costs a few queries and Dagster events
ASK_AGAIN_PAUSE_BASES = 2  # the pause before asking again about an empty span, in the venue's retry_base_seconds


@dataclasses.dataclass
class Progress:
    """Progress of a ranged run, for its logs and metadata."""

    pages_total: int
    pages_done: int = 0
    days_done: int = 0
    candles: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def percent(self) -> float:
        return 100.0 if self.pages_total == 0 else 100.0 * self.pages_done / self.pages_total

    @property
    def eta_seconds(self) -> float:
        elapsed = time.monotonic() - self.started
        return 0.0 if self.pages_done == 0 else elapsed * (self.pages_total - self.pages_done) / self.pages_done

    def as_metadata(self) -> dict:
        return {"pages_done": self.pages_done, "pages_total": self.pages_total, "days_done": self.days_done,
                "candles": self.candles, "percent": round(self.percent, 1), "eta_seconds": round(self.eta_seconds, 1),
                "candles_per_second": round(self.candles / max(time.monotonic() - self.started, 1e-9))}

    def message(self) -> str:
        return (f"{self.pages_done}/{self.pages_total} pages ({self.percent:.0f}%), {self.days_done} days, "
                f"{self.candles:,} candles, ETA {self.eta_seconds:.0f} s")


def page_windows(start_ms: int, end_ms: int, step_ms: int, limit: int) -> list[tuple[int, int]]:
    """[since, end) request windows of at most ``limit`` grid candles covering [start_ms, end_ms)."""
    span = step_ms * limit
    return [(since, min(since + span, end_ms)) for since in range(start_ms, end_ms, span)]


def fetch_windows(source: CandleSource, symbol: str, interval: str, windows: Iterable[tuple[int, int]],
                  now_ms: int, workers: int, lookahead: int,
                  empty_answers: list[tuple[int, int]] | None = None) -> Iterator[tuple[tuple[int, int], pd.DataFrame]]:
    """Each window's closed candles, in window order, with ``workers`` requests in flight and at
    most ``lookahead`` windows fetched ahead of the consumer; the spans answered empty are
    appended to ``empty_answers`` by the time their window is yielded."""
    step = interval_ms(interval)
    windows = iter(windows)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    pending: collections.deque = collections.deque()

    def submit(window):
        spans: list[tuple[int, int]] = []
        pending.append((window, pool.submit(fetch_closed_candles, source, symbol, interval, step, *window, now_ms, spans), spans))

    try:
        for window in itertools.islice(windows, lookahead):
            submit(window)
        while pending:
            window, future, spans = pending.popleft()
            frame = future.result()
            if empty_answers is not None:
                empty_answers.extend(spans)
            for nxt in itertools.islice(windows, 1):
                submit(nxt)
            yield window, frame
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def find_delisting(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
                   now_ms: int) -> Delisting | None:
    """Whether the venue stopped trading the instrument, recorded in the warehouse either way, from
    positive evidence only: the venue's market (or ticker) list loaded and marks the symbol inactive
    or does not hold it (``NotListed``); any error (refused credentials, a venue out of reach) is
    raised, nothing recorded. A symbol the venue marks inactive ends with the last candle it serves;
    one gone from its markets ends with the last candle stored (with none stored, it is a symbol
    the venue never had: an error)."""
    step = interval_ms(interval)
    try:
        trading = source.check_symbol(instrument.symbol)
    except NotListed:
        last = warehouse.latest_open_time(instrument.exchange, instrument.symbol, interval)
        if last is None:
            raise
        found = Delisting(last + step, served=False)
    else:
        if trading:
            found = None
        else:
            end = source.last_candle_end(instrument.symbol, interval)
            if end is None:
                known = delistings.delisted(warehouse, instrument.exchange, instrument.symbol)
                last = warehouse.latest_open_time(instrument.exchange, instrument.symbol, interval)
                end = next(iter(known.values())).delisted_ms if known else (now_ms if last is None else last + step)
            found = Delisting(end, served=True)
    delistings.record(warehouse, instrument.exchange, instrument.symbol, found, now_ms)
    return found


class _Uncounted:
    """The source's request counts not yet added to the warehouse's ``venue_counters``: each batch
    takes its share when it is handed to the writer (and adds it when it commits); what is left when
    the ingestion ends (a failure, probes of days with nothing to fetch) is added then."""

    def __init__(self, source: CandleSource):
        self.source = source
        self.before = dataclasses.replace(source.stats)

    def take(self) -> FetchStats:
        now = dataclasses.replace(self.source.stats)
        delta, self.before = now.since(self.before), now
        return delta


def ingest_days(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
                days: Iterable[dt.date], now_ms: int, workers: int = 1,
                on_progress: Callable[[Progress], None] | None = None,
                archive: CandleArchive | None = None) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
    """Ingests the days of one instrument; yields each batch's (day, report) once it is written.
    The requests it sent and the candles it wrote are counted in ``venue_counters``, whatever the
    outcome (a venue that stops answering shows there)."""
    uncounted = _Uncounted(source)
    try:
        yield from _ingest_days(source, warehouse, instrument, interval, days, now_ms, workers, on_progress, archive, uncounted)
    finally:
        with contextlib.suppress(Exception):  # never masks the ingestion's own failure (the warehouse may be it)
            venue_counters.add(warehouse, instrument.exchange, getattr(source, "egress_address", None), uncounted.take(), 0, now_ms)


def _ingest_days(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
                 days: Iterable[dt.date], now_ms: int, workers: int, on_progress: Callable[[Progress], None] | None,
                 archive: CandleArchive | None, uncounted: _Uncounted) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
    """``ingest_days``.

    Days with nothing to fetch (before the configured start or the listing, older than the venue's
    history and its archive, not begun, after a delisting) are reported with a note and no request.
    With an ``archive``, the days its files answer come from them (``archive_stage``) and the rest
    from REST. Expected candles are those of the venue's trading sessions (all of them for crypto).
    A failure raises after the batches before it were written, each atomically; re-running is idempotent.
    """
    step = interval_ms(interval)
    closed_end = now_ms // step * step
    sessions = source.config.sessions
    oldest = history_start_ms(source.config, step, now_ms)
    batch_started = time.perf_counter()
    todo: list[DayTodo] = []
    listed: int | None = None
    delisting: Delisting | None = None
    delisted, probed, listing_probed = "", False, False
    for day in sorted(set(days)):
        start, end = day_bounds_ms(day)
        if day < instrument.start:
            yield [(day, PartitionReport(note=f"nothing to do: before the instrument's configured start {instrument.start}"))]
            continue
        if start >= now_ms:
            yield [(day, PartitionReport(note="nothing to do: the day has not started"))]
            continue
        if oldest is not None and end <= oldest and archive is None:
            yield [(day, beyond_history(instrument, interval, source.config, oldest))]
            continue
        if not probed:
            probed = True
            delisting = find_delisting(source, warehouse, instrument, interval, now_ms)
            delisted = ms_to_iso(delisting.delisted_ms) if delisting else ""
        if delisting and (not delisting.served or start >= delisting.delisted_ms):
            yield [(day, PartitionReport(note=f"nothing to do: {delisting.describe(instrument.exchange)}", delisted=delisted))]
            continue
        if not listing_probed:  # a candle stored before the day proves the listing earlier: no probe
            listing_probed = True
            earliest = warehouse.earliest_open_time(instrument.exchange, instrument.symbol, interval)
            listed = earliest if earliest is not None and earliest <= start else source.first_open_time(instrument.symbol, interval)
        if listed is None or listed >= end:
            when = "has no candles at all" if listed is None else f"was listed at {ms_to_iso(listed)}"
            yield [(day, PartitionReport(note=f"nothing to do: before listing ({instrument.symbol} {when})"))]
            continue
        first = max(start, listed // step * step)
        last = min(end, closed_end, delisting.delisted_ms if delisting else end)
        todo.append(DayTodo(day, first, last, sessions.count(max(start, listed), last, step) if first < last else 0))
    if archive is not None and todo:
        stage = ArchiveStage(archive, warehouse, instrument, interval, now_ms,
                             functools.partial(_write_batch, source.config, warehouse, instrument, interval,
                                               egress=getattr(source, "egress_address", None)))
        yield from stage.run(todo)
        todo = stage.leftover
    if oldest is not None:  # what the archive did not answer, within the venue's REST history
        within = []
        for d in todo:
            if day_bounds_ms(d.day)[1] <= oldest:
                yield [(d.day, beyond_history(instrument, interval, source.config, oldest, d.note))]
            elif d.start < oldest:
                within.append(dataclasses.replace(d, start=oldest, expected=sessions.count(oldest, d.end, step) if oldest < d.end else 0))
            else:
                within.append(d)
        todo = within
    if not todo:
        return

    spans: list[list[int]] = []
    for d in todo:
        if spans and spans[-1][1] == d.start:
            spans[-1][1] = d.end
        elif d.start < d.end:
            spans.append([d.start, d.end])
    windows = [w for start, end in spans for w in page_windows(start, end, step, source.page_limit)]
    progress = Progress(pages_total=len(windows))
    batch_days = max(1, BATCH_CANDLES * step // DAY_MS)
    remaining = collections.deque(todo)
    writer = _BatchWriter(source, warehouse, instrument, interval, now_ms, progress, on_progress, uncounted, batch_started,
                          delisted)
    lookahead = max(2 * workers, -(-BATCH_CANDLES // source.page_limit) + workers)
    try:
        try:
            for (_, window_end), frame in fetch_windows(source, instrument.symbol, interval, windows, now_ms, workers, lookahead,
                                                        writer.empty_answers):
                writer.frames.append(frame)
                progress.pages_done += 1
                while remaining and remaining[0].end <= window_end:
                    writer.ready.append(remaining.popleft())
                if writer.ready and (len(writer.ready) >= batch_days or not remaining):
                    yield from writer.handover()
        except Exception:
            yield from writer.written()  # the batch already handed to the writer is reported before failing
            raise
        writer.ready.extend(remaining)  # days with no closed candle yet: nothing to fetch, still reported
        if writer.ready:
            yield from writer.handover()
        yield from writer.written()
    finally:
        writer.close()


class _BatchWriter:
    """Whole days written by one thread while fetching goes on: the fetched frames not written yet,
    the days ready to write, the batch being written, and the request counts since the last batch."""

    def __init__(self, source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str, now_ms: int,
                 progress: Progress, on_progress: Callable[[Progress], None] | None, uncounted: _Uncounted,
                 batch_started: float, delisted: str):
        self.source, self.warehouse, self.instrument, self.interval, self.now_ms = source, warehouse, instrument, interval, now_ms
        self.progress, self.on_progress = progress, on_progress
        self.frames: list[pd.DataFrame] = []
        self.ready: list[DayTodo] = []
        self.uncounted, self.batch_started = uncounted, batch_started  # the first batch counts the listing probes too
        self.writing: Future | None = None
        self.delisted = delisted
        self.last_candle_ms: int | None = None  # the last candle handed to the writer (a left side for the next batch)
        self.empty_answers: list[tuple[int, int]] = []  # spans the venue answered empty, not yet handed to the writer
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")

    def submit_ready(self) -> None:
        """Hands the ready days to the writer thread."""
        fetched = pd.concat(self.frames, ignore_index=True) if self.frames else empty_candles()
        written_until = self.ready[-1].end
        batch = fetched[fetched["open_time"] < written_until].reset_index(drop=True)
        self.frames = [fetched[fetched["open_time"] >= written_until]]
        after = int(self.frames[0]["open_time"].iloc[0]) if len(self.frames[0]) else None
        sides, self.last_candle_ms = (self.last_candle_ms, after), (int(batch["open_time"].iloc[-1]) if len(batch) else self.last_candle_ms)
        empty = [(a, min(b, written_until)) for a, b in self.empty_answers if a < written_until]
        self.empty_answers[:] = [(max(a, written_until), b) for a, b in self.empty_answers if b > written_until]
        delta = self.uncounted.take()
        counts = {"batch_days": len(self.ready), "requests": delta.requests, "retries": delta.retries,
                  "rate_limit_waits": delta.rate_limit_waits, "delisted": self.delisted}
        self.writing = self.pool.submit(_write_batch, self.source.config, self.warehouse, self.instrument, self.interval, list(self.ready), batch,
                                        self.now_ms, counts, self.batch_started, DaySource(REST), source=self.source, sides=sides,
                                        empty_answers=empty, egress=getattr(self.source, "egress_address", None), fetched=delta)
        self.batch_started = time.perf_counter()
        self.ready.clear()

    def handover(self) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
        """The batch being written, once it is, after the ready days went to the writer: the
        consumer of a batch (its Dagster events) works while the next batch is written."""
        reports = self._finish()
        self.submit_ready()
        if reports is not None:
            yield reports

    def written(self) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
        """The batch the writer has (if any), once it is written."""
        reports = self._finish()
        if reports is not None:
            yield reports

    def _finish(self) -> list[tuple[dt.date, PartitionReport]] | None:
        if self.writing is None:
            return None
        reports, self.writing = self.writing.result(), None
        self.progress.days_done += len(reports)
        self.progress.candles += sum(report.candles_fetched for _, report in reports)
        if self.on_progress:
            self.on_progress(self.progress)
        return reports

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def beyond_history(instrument: Instrument, interval: str, config: ExchangeConfig, oldest: int, note: str = "") -> PartitionReport:
    if note:
        archive = f"; {note}"
    elif config.archive is not None:
        archive = "; its archive does not hold this day either"
    else:
        archive = "; older ones come from its archive, which the universe does not configure" if config.profile.archive_format else ""
    return PartitionReport(note=(f"nothing to do: beyond history ({instrument.exchange} serves only its latest {config.history_candles} "
                                 f"{interval} candles, from {ms_to_iso(oldest)}{archive})"))


def suspicious_spans(config: ExchangeConfig, days: list[DayTodo], times, step: int, empty_answers: list[tuple[int, int]],
                     sides: tuple[int | None, int | None]) -> tuple[list[Gap], list[Gap]]:
    """The spans of a batch's days that only an empty answer covered (a hole inside an answer is
    the venue's word, confirmed later by the gap scan; a short answer was followed by another
    request), unless simply no trades (on a venue that omits them, a run shorter than an outage):
    those with a candle of this run on both sides (``sides``: the last candle before the batch,
    the first after it), to ask about again; and those without (at the edge of what the run
    fetched), unexplained. The still-forming end of a day in progress is neither."""
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
            for start, end, _ in config.sessions.clip(find_gaps(inside, lo, hi, step), step).tolist():
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


def _in_day(gaps: list[Gap], start: int, end: int, step: int, config: ExchangeConfig) -> int:
    return sum(config.sessions.count(max(g.start_ms, start), min(g.end_ms, end), step) for g in gaps
               if max(g.start_ms, start) < min(g.end_ms, end))


def _write_batch(config: ExchangeConfig, warehouse: Warehouse, instrument: Instrument, interval: str, days: list[DayTodo],
                 frame: pd.DataFrame, now_ms: int, counts: dict, started: float, day_source: DaySource,
                 mixed: dict[dt.date, DaySource] | None = None, source: CandleSource | None = None,
                 sides: tuple[int | None, int | None] = (None, None), empty_answers: list[tuple[int, int]] = (),
                 egress: str | None = None, fetched: FetchStats | None = None) -> list[tuple[dt.date, PartitionReport]]:
    """Writes a batch of whole days and records each day's source: ``day_source``, or for the days
    in ``mixed`` that source with some candles keeping the stored values (counted as present: their
    values are in ``frame``, the stored ones). From REST (``source`` given), the spans that empty
    answers covered are first asked about again (``suspicious_spans``, ``ask_again``): what comes now
    is written, what is still empty is recorded as confirmed empty, and what could not be asked
    about (at the edge of the run) is recorded as an open (fillable) gap for the gap loop."""
    step = interval_ms(interval)
    confirmed: list[Gap] = []
    unexplained: list[Gap] = []
    if source is not None and empty_answers:
        ask, unexplained = suspicious_spans(config, days, frame["open_time"].to_numpy(), step, list(empty_answers), sides)
        if ask:
            found, confirmed = ask_again(source, instrument.symbol, interval, ask, now_ms)
            if len(found):
                frame = pd.concat([frame, found], ignore_index=True).sort_values("open_time", kind="stable").reset_index(drop=True)
        gap_records.record_confirmed(warehouse, instrument.exchange, instrument.symbol, interval,
                                     confirmed + [Gap(g.start_ms, g.end_ms, FILLABLE) for g in unexplained], step, now_ms)
    validate_candles(frame, step, now_ms)
    bounds = [day_bounds_ms(d.day) for d in days]
    merged = warehouse.merge_partitions(candles, instrument.exchange, instrument.symbol, interval, frame, bounds, now_ms)
    venue_counters.add(warehouse, instrument.exchange, egress, fetched, len(frame), now_ms)
    seconds = round(time.perf_counter() - started, 3)
    recorded: dict[dt.date, DaySource] = {}
    times = frame["open_time"].to_numpy()
    sessions = config.sessions
    reports = []
    for d, (start, end), result in zip(days, bounds, merged):
        day_times = times[(times >= start) & (times < end)]
        quiet = []
        if config.profile.omits_empty and d.start < d.end:
            missing = sessions.clip(find_gaps(day_times, d.start, d.end, step), step)
            quiet = no_trade_runs(missing, int(day_times[-1]) if len(day_times) else None, d.end == end,
                                  config.downtime_min_minutes * MINUTE_MS)
            gap_records.record_confirmed(warehouse, instrument.exchange, instrument.symbol, interval, quiet, step, now_ms)
        held = (mixed or {}).get(d.day, day_source)
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
            downtime_candles=_in_day(confirmed, d.start, d.end, step, config),
            unexplained_candles=_in_day(unexplained, d.start, d.end, step, config),
            seconds=seconds,
            source=held.source if d.start < d.end else "",
            archive_file=day_source.file or "",
            archive_sha256=day_source.sha256 or "",
            note=d.note,
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
        if d.end < end:
            report.note = (report.note + "; " if report.note else "") + "day still in progress: closed candles so far"
        reports.append((d.day, report))
    sources.record_days(warehouse, instrument.exchange, instrument.symbol, interval, recorded, now_ms)
    return reports

