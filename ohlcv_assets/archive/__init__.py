"""Venues' bulk archives as a candle source for deep history, beside the REST sources.

An archive is a set of files, each covering some days of one instrument and interval. The ingest
asks an archive to ``plan`` the files for the days it must fill, takes each file only if it is
published and passes its checksum (``load_verified``), fills from REST whatever the files do not
cover, and records which file (and sha256) each stored day came from. Formats: ``binance_vision``
(daily and monthly zips with sha256 files) and ``kraken_ohlcvt`` (Kraken's OHLCVT zips).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path
from typing import Protocol, TypeVar

import pandas as pd

from ohlcv_assets.core.universe import ArchiveConfig, ExchangeConfig


class ArchiveUnavailable(Exception):
    """A file that cannot be used: not published (yet), failed its checksum, or not a readable zip.
    Its days are a hole the REST source fills; ``reason`` says which for the metadata."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    name: str  # the file's path below the archive's root: how source records name it
    location: str  # URL or local path
    kind: str  # monthly, daily or zip (Kraken)
    days: tuple[dt.date, ...]  # the asked days it covers


@dataclasses.dataclass
class ArchiveStats:
    checksums_fetched: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    checksum_failures: int = 0
    unreadable: int = 0


@dataclasses.dataclass(frozen=True)
class LoadedFile:
    candles: pd.DataFrame  # the asked days' candles (a candle frame)
    sha256: str
    covers: tuple[int, int]  # [start, end) ms the file holds candles for: days outside are not its to answer
    file: str = ""  # ArchiveFile.name: set, as sha256 is, by load_verified


Content = TypeVar("Content", bytes, Path)  # what a format reads a file into: its bytes, or the local path it is saved at


class CandleArchive(Protocol[Content]):
    """One venue's archive in one format; ``Content`` is how a file reaches ``parse`` (Binance's
    zips as bytes, Kraken's multi-gigabyte zips as a local path, streamed from there)."""

    config: ExchangeConfig
    stats: ArchiveStats

    def plan(self, symbol: str, interval: str, days: list[dt.date], today: dt.date) -> list[ArchiveFile]:
        """The files to read for ``days`` (each day in at most one); days in none are REST's."""

    def published_sha256(self, file: ArchiveFile) -> str | None:
        """The sha256 the venue publishes for the file (None: the format has none); raises
        ArchiveUnavailable if the file is not published."""

    def read(self, symbol: str, interval: str, file: ArchiveFile) -> tuple[Content, str]:
        """(the file's content, as the format reads it; its sha256)."""

    def parse(self, symbol: str, interval: str, file: ArchiveFile, data: Content) -> LoadedFile:
        """The candles of the file's days; raises ArchiveUnavailable on a file that is not a readable zip."""

    @staticmethod
    def signature_of(archive: ArchiveConfig) -> str:
        """What the archive is now, as far as it can be told without a request (its setting; the
        local files it names): the gap loop tries a given-up gap again when this changes."""

    def probe(self, symbol: str, interval: str, today: dt.date) -> str:
        """What answered where a file of the instrument must be (one request, no retries, nothing
        downloaded): for the health check. Raises ArchiveUnavailable when nothing does."""


def sha256_of(data: bytes | Path) -> str:
    """sha256 of bytes, or of the file at a path (read in chunks)."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(archive: CandleArchive[Content], symbol: str, interval: str, file: ArchiveFile, published: str | None,
                  attempts: int) -> LoadedFile:
    """The file's candles, downloaded again (up to ``attempts`` times) while its sha256 differs from
    the published one or it is not a readable zip; then ArchiveUnavailable: never loaded."""
    failure: ArchiveUnavailable | None = None
    for _ in range(attempts):
        data, sha = archive.read(symbol, interval, file)
        if published is not None and sha != published:
            archive.stats.checksum_failures += 1
            failure = ArchiveUnavailable("checksum_mismatch", f"{file.name}: sha256 {sha[:12]}… differs from the published {published[:12]}…")
            continue
        try:
            loaded = archive.parse(symbol, interval, file, data)
        except ArchiveUnavailable as err:
            archive.stats.unreadable += 1
            failure = err
            continue
        return dataclasses.replace(loaded, sha256=sha, file=file.name)
    assert failure is not None
    raise failure


def load_days(archive: CandleArchive[Content], symbol: str, series: str, days: list, today) -> tuple[list[LoadedFile], dict, dict]:
    """What the archive's files hold for ``days`` of one series (each file verified as
    ``load_verified`` does): the loaded files, the file each answered day came from, and why a
    day's file was not loaded. For the event series (funding, open interest), whose days are not
    written through the klines path."""
    loaded, files, notes = [], {}, {}
    for file in archive.plan(symbol, series, days, today):
        try:
            loaded.append(load_verified(archive, symbol, series, file, archive.published_sha256(file), archive.archive.attempts))
        except ArchiveUnavailable as err:
            notes.update({day: f"{file.name}: {err}"[:300] for day in file.days})
            continue
        files.update({day: file.name for day in file.days})
    return loaded, files, notes

