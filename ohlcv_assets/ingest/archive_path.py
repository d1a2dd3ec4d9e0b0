"""The archive path of the ingest: the days an archive's files answer, verified and reconciled.

For the days of a run, the archive plans its files (whole months, daily files, Kraken's zips);
each file is taken only if published and matching its sha256 (retried, then a hole), a day the
file holds only part of (a holey file) is left to REST, and a file already ingested with the same
sha256 for the same days is neither downloaded nor written again. Where the warehouse already
holds candles for the day (from REST, or another file), the two are compared first: a
disagreement is recorded, never silently overwritten, and resolved by the venue's rule (days
older than ``prefer_archive_after_days`` keep the archive's values, younger ones the stored ones;
a day that keeps stored values on some candles is recorded as mixed, those candles counted as present).
A file that fails is a hole for its own days only (REST's); the downloader decides when its host
is not asked again (``archive.download``). Notes say what was done with the file; that REST then
fetched the day is said where it did (``ingest``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ohlcv_assets.archive import ArchiveFile, ArchiveUnavailable, CandleArchive, LoadedFile, load_verified
from ohlcv_assets.candle_frame import EXTRA_COLUMNS
from ohlcv_assets.ingest.report import DayTodo, PartitionReport
from ohlcv_assets.ingest.write import BATCH_CANDLES, Batch, IngestRun, write_batch
from ohlcv_assets.core.intervals import DAY_MS, day_bounds_ms, interval_ms
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.warehouse import provenance
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.provenance import ARCHIVE, DaySource, Disagreement
from ohlcv_assets.warehouse.merge import row_changes, value_columns


def reconcile(stored: pd.DataFrame, incoming: pd.DataFrame, days: list[DayTodo], file: str, stored_sources: dict,
              today: dt.date, prefer_archive_after_days: int) -> tuple[pd.DataFrame, list[Disagreement]]:
    """Compares a file's candles with the stored ones of the same days. Columns the file lacks
    (all NaN: Kraken's files have no VWAP) keep the stored values. Returns the candles to write
    (differing ones holding the stored values where the rule keeps them: still present, unchanged)
    and the disagreements per day."""
    if stored.empty or incoming.empty:
        return incoming, []
    lacking = [c for c in EXTRA_COLUMNS if incoming[c].isna().all()]
    if lacking:
        kept = incoming.merge(stored[["open_time", *lacking]], on="open_time", how="left", suffixes=("_x", ""))
        incoming = incoming.assign(**{c: kept[c].to_numpy() for c in lacking})
    changes = row_changes(stored, incoming, value_columns(candles))
    if not changes.is_revised.any():
        return incoming, []
    times = incoming["open_time"].to_numpy()
    drop = np.zeros(len(incoming), dtype=bool)
    found = []
    for d in days:
        lo, hi = day_bounds_ms(d.day)
        differs = changes.is_revised & (times >= lo) & (times < hi)
        if not differs.any():
            continue
        keep_archive = (today - d.day).days > prefer_archive_after_days
        if not keep_archive:
            drop |= differs
        other = stored_sources.get(d.day)
        found.append(Disagreement(day=d.day, source=file, other=other.describe() if other else "stored", candles=int(differs.sum()),
                                  max_diff_pct=round(100 * float(changes.revision[differs].max()), 6),
                                  first_open_time=int(times[differs][0]), kept="archive" if keep_archive else "stored"))
    if drop.any():
        kept = stored.set_index("open_time").loc[times[drop]]
        incoming = incoming.copy()
        for column in incoming.columns.drop("open_time"):
            incoming.loc[drop, column] = kept[column].to_numpy()
    return incoming, found


class ArchiveStage:
    """Runs the archive over a run's days; ``leftover`` is then what REST must fetch."""

    def __init__(self, archive: CandleArchive, run: IngestRun):
        self.archive, self.ingest_run = archive, run
        self.warehouse, self.instrument, self.interval, self.now_ms = run.warehouse, run.instrument, run.interval, run.now_ms
        self.config = archive.config.archive
        self.step = interval_ms(run.interval)
        self.today = dt.datetime.fromtimestamp(run.now_ms / 1000, dt.timezone.utc).date()
        self.leftover: list[DayTodo] = []

    def run(self, todo: list[DayTodo]) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
        """Writes the days the archive answers, file by file, the next file downloaded and parsed
        while the current one is written (at most two files in memory)."""
        pending = {d.day: d for d in todo}
        notes: dict[dt.date, str] = {}
        stored = provenance.sources_of(self.warehouse, self.instrument.exchange, self.instrument.symbol, self.interval, list(pending))
        asked = [d.day for d in todo if d.start < d.end]
        files = [f for f in self.archive.plan(self.instrument.symbol, self.interval, asked, self.today) if asked]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive") as pool:
            fetches = collections.deque(pool.submit(self._fetch, f, stored) for f in files[:2])
            for index, file in enumerate(files):
                fetched = fetches.popleft()
                if index + 2 < len(files):
                    fetches.append(pool.submit(self._fetch, files[index + 2], stored))
                days = [pending[day] for day in file.days if day in pending]
                try:
                    outcome = fetched.result()
                except ArchiveUnavailable as err:
                    for d in days:
                        notes[d.day] = f"archive {file.name}: {err.reason} ({err.detail})"
                    continue
                if not days:
                    continue
                if isinstance(outcome, str):
                    for d in days:
                        del pending[d.day]
                    yield [(d.day, self._unchanged(d, file, outcome, stored[d.day])) for d in days]
                    continue
                answered = self._answerable(days, outcome, file, notes)
                for written in self._write(answered, outcome, file, stored, notes):
                    for day, _ in written:
                        del pending[day]
                    yield written
        self.leftover = [dataclasses.replace(d, note=notes.get(d.day, d.note)) for d in pending.values()]

    def _fetch(self, file: ArchiveFile, stored: dict) -> LoadedFile | str:
        """The file's candles, or its sha256 if every asked day already holds this very file."""
        published = self.archive.published_sha256(file)
        if published and all(day in stored and stored[day].holds(file.name, published) for day in file.days):
            return published
        return load_verified(self.archive, self.instrument.symbol, self.interval, file, published, self.config.attempts)

    def _unchanged(self, d: DayTodo, file: ArchiveFile, sha: str, held: DaySource) -> PartitionReport:
        return PartitionReport(expected_candles=d.expected, source=held.source, archive_file=file.name, archive_sha256=sha,
                               note=f"unchanged: the day holds {file.name} (sha256 {sha[:12]}…), which is what the archive "
                                    "still publishes (its checksum says); the file not downloaded, nothing written")

    def _answerable(self, days: list[DayTodo], loaded: LoadedFile, file: ArchiveFile, notes: dict) -> list[DayTodo]:
        """The days the file answers whole: inside what it covers and, on a venue that sends every
        interval (Binance), with every expected candle (a holey file's day goes to REST)."""
        times = loaded.candles["open_time"].to_numpy()
        answered = []
        for d in days:
            lo, hi = day_bounds_ms(d.day)
            if not (loaded.covers[0] <= lo and hi <= loaded.covers[1]):
                continue
            held = int(np.count_nonzero((times >= d.start) & (times < d.end)))
            if not self.archive.config.profile.omits_empty and held < d.expected:
                notes[d.day] = f"archive {file.name} holds {held} of the day's {d.expected} candles: not loaded"
                continue
            answered.append(d)
        return answered

    def _write(self, days: list[DayTodo], loaded: LoadedFile, file: ArchiveFile, stored: dict,
               notes: dict) -> Iterator[list[tuple[dt.date, PartitionReport]]]:
        """Writes the file's days batch by batch; a batch whose candles break the candle schema (a
        file read right but holding impossible candles) is not loaded: its days are REST's."""
        inst = self.instrument
        times = loaded.candles["open_time"].to_numpy()
        per_batch = max(1, BATCH_CANDLES * self.step // DAY_MS)
        held, written = 0, False
        for first in range(0, len(days), per_batch):
            started = time.perf_counter()
            batch = days[first:first + per_batch]
            keep = np.zeros(len(times), dtype=bool)
            for d in batch:
                keep |= (times >= d.start) & (times < d.end)
            frame = loaded.candles[keep].reset_index(drop=True)
            in_file = len(frame)
            lo, hi = day_bounds_ms(batch[0].day)[0], day_bounds_ms(batch[-1].day)[1]
            existing = self.warehouse.read_candles(inst.exchange, inst.symbol, self.interval, lo, hi, extras=True)
            frame, found = reconcile(existing, frame, batch, file.name, stored, self.today, self.config.prefer_archive_after_days)
            source = DaySource(ARCHIVE, file.name, loaded.sha256)
            mixed = {f.day: source.keeping(stored.get(f.day), f.candles) for f in found if f.kept == "stored"}
            try:
                reports = write_batch(self.ingest_run, Batch(batch, frame, source, started, mixed=mixed))
            except CandleValidationError as err:
                for d in batch:
                    notes[d.day] = f"archive {file.name}: invalid_candles ({str(err).splitlines()[0][:240]}): not loaded"
                continue
            held, written = held + in_file, True
            provenance.record_disagreements(self.warehouse, inst.exchange, inst.symbol, self.interval, found, self.now_ms)
            disagreeing = {f.day: f.candles for f in found}
            for day, report in reports:
                report.sources_disagreeing = disagreeing.get(day, 0)
                notes_now = [report.note] if report.note else []
                before = stored.get(day)
                if before is not None and before.file == file.name and before.sha256 != loaded.sha256:
                    notes_now.append(f"{file.name} changed since it was ingested (sha256 {(before.sha256 or '')[:12]}… → "
                                     f"{loaded.sha256[:12]}…): ingested again")
                if day in disagreeing:
                    kept = next(f.kept for f in found if f.day == day)
                    notes_now.append(f"{disagreeing[day]} candle(s) differ between {file.name} and the stored candles; kept the {kept} values"
                                     + (f" (from {mixed[day].kept_from})" if day in mixed else ""))
                report.note = "; ".join(notes_now)
            yield reports
        if written:
            provenance.record_file(self.warehouse, inst.exchange, inst.symbol, self.interval, file.name, loaded.sha256, held, self.now_ms)
