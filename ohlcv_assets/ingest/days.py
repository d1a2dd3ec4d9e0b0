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
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from ohlcv_assets.archive import CandleArchive
from ohlcv_assets.ingest.archive_path import ArchiveStage
from ohlcv_assets.ingest.write import BATCH_CANDLES, Batch, IngestRun, write_batch
from ohlcv_assets.candle_frame import empty_candles
from ohlcv_assets.ingest.report import DayTodo, PartitionReport
from ohlcv_assets.exchange.source import (
    CandleSource,
    FetchStats,
    NotListed,
    fetch_closed_candles,
    history_start_ms,
)
from ohlcv_assets.core.intervals import DAY_MS, ceil_div, day_bounds_ms, interval_ms, ms_to_iso
from ohlcv_assets.core.universe import ExchangeConfig, Instrument
from ohlcv_assets.warehouse import delistings, venue_counters
from ohlcv_assets.warehouse.delistings import Delisting
from ohlcv_assets.warehouse.provenance import REST, DaySource
from ohlcv_assets.warehouse.store import Warehouse



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
    run = IngestRun(source, warehouse, instrument, interval, now_ms)
    uncounted = _Uncounted(source)
    try:
        yield from _ingest_days(run, days, workers, on_progress, archive, uncounted)
    finally:
        with contextlib.suppress(Exception):  # never masks the ingestion's own failure (the warehouse may be it)
            venue_counters.add(warehouse, instrument.exchange, run.egress, uncounted.take(), 0, now_ms)


def _ingest_days(run: IngestRun, days: Iterable[dt.date], workers: int, on_progress: Callable[[Progress], None] | None,
                 archive: CandleArchive | None, uncounted: _Uncounted) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
    """``ingest_days``.

    Days with nothing to fetch (before the configured start or the listing, older than the venue's
    history and its archive, not begun, after a delisting) are reported with a note and no request.
    With an ``archive``, the days its files answer come from them (``archive_stage``) and the rest
    from REST. Expected candles are those of the venue's trading sessions (all of them for crypto).
    A failure raises after the batches before it were written, each atomically; re-running is idempotent.
    """
    source, warehouse, instrument, interval, now_ms = run.source, run.warehouse, run.instrument, run.interval, run.now_ms
    step = interval_ms(interval)
    closed_end = now_ms // step * step
    sessions = source.config.sessions_of(instrument)
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
        stage = ArchiveStage(archive, run)
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
    writer = _BatchWriter(run, progress, on_progress, uncounted, batch_started, delisted)
    lookahead = max(2 * workers, ceil_div(BATCH_CANDLES, source.page_limit) + workers)
    try:
        try:
            for (_, window_end), frame in fetch_windows(source, instrument.symbol, interval, windows, now_ms, workers, lookahead,
                                                        writer.empty_answers):
                writer.frames.append(frame)
                progress.pages_done += 1
                if writer.writing is not None and writer.writing.done():
                    yield from writer.written()  # its days show as materialized while the next batch is fetched
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

    def __init__(self, run: IngestRun, progress: Progress, on_progress: Callable[[Progress], None] | None,
                 uncounted: _Uncounted, batch_started: float, delisted: str):
        self.run = run
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
        self.writing = self.pool.submit(write_batch, self.run, Batch(
            list(self.ready), batch, DaySource(REST), self.batch_started, counts, sides=sides, empty_answers=empty, fetched=delta))
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
