"""Downloading archive files: plain HTTP GETs with retries on transient failures (archives are
static files behind a CDN, with no request-weight budget), or a local path read as it is."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from ohlcv_assets.archive import ArchiveStats, ArchiveUnavailable
from ohlcv_assets.exchange.egress import bind_session
from ohlcv_assets.exchange.retrying import backoff_seconds

if TYPE_CHECKING:
    from ohlcv_assets.universe import ArchiveConfig, ExchangeConfig

NOT_PUBLISHED = (403, 404)  # S3-backed archives answer 403 for a key that does not exist


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


class Downloader:
    """GETs with retries. A host that could not be reached at all (every attempt of a file a
    connection error or a timeout) is not asked again by this downloader (one run): each later file
    of it is a hole at once, which REST fills, instead of another round of retries per file (with a
    mirror down, minutes per file on a deep backfill)."""

    def __init__(self, timeout_seconds: float, egress_address: str | None, stats: ArchiveStats, attempts: int = 5,
                 retry_base_seconds: float = 0.5):
        self.session = bind_session(requests.Session(), egress_address)
        self.timeout, self.stats, self.attempts, self.retry_base = timeout_seconds, stats, attempts, retry_base_seconds
        self.rng = random.Random()
        self.unreachable: dict[str, str] = {}  # host -> how it failed

    def get(self, location: str, checksum: bool = False) -> bytes:
        """The file's bytes; ArchiveUnavailable("not_published") if the archive has no such file.
        ``checksum``: a published sha256 file, counted apart from the data files."""
        if not is_url(location):
            path = Path(location)
            if not path.is_file():
                raise ArchiveUnavailable("not_published", f"{location} does not exist")
            return path.read_bytes()
        content = self._fetch(location, lambda answer: answer.content)
        if checksum:
            self.stats.checksums_fetched += 1
        else:
            self.stats.files_downloaded += 1
            self.stats.bytes_downloaded += len(content)
        return content

    def check(self, location: str) -> str:
        """What the location answers to one request (a local path: that it exists); ArchiveUnavailable
        if nothing is there."""
        if not is_url(location):
            if not Path(location).exists():
                raise ArchiveUnavailable("not_published", f"{location} does not exist")
            return f"{location} exists"
        try:
            status, _ = self._peek(location)
        except requests.RequestException as err:
            raise ArchiveUnavailable("download_failed", f"{location}: {type(err).__name__}") from None
        if status != 200:
            raise ArchiveUnavailable("not_published" if status in NOT_PUBLISHED else "download_failed",
                                     f"{location} answered {status}")
        return f"{location} answered 200"

    def save(self, location: str, target: Path) -> Path:
        """Streams a large file to ``target``, kept for the next runs while the location serves a
        file of the same size (a full archive republished with more history is fetched again; a
        location that does not answer leaves the kept copy in use)."""
        if target.is_file() and self._published_size(location) in (None, target.stat().st_size):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")

        def stream(answer: requests.Response) -> int:
            with open(partial, "wb") as out:
                for chunk in answer.iter_content(1 << 20):
                    out.write(chunk)
            return partial.stat().st_size

        self.stats.bytes_downloaded += self._fetch(location, stream, stream=True)
        self.stats.files_downloaded += 1
        partial.rename(target)
        return target

    def _published_size(self, location: str) -> int | None:
        """The size the location announces; None if unknown or it does not answer."""
        if urlsplit(location).netloc in self.unreachable:
            return None
        try:
            status, length = self._peek(location)
        except requests.RequestException:
            return None
        return int(length) if status == 200 and length and length.isdigit() else None

    def _peek(self, location: str) -> tuple[int, str | None]:
        """(status, Content-Length) of one request, no retries, the body not read."""
        with self.session.get(location, timeout=self.timeout, stream=True) as answer:
            return answer.status_code, answer.headers.get("Content-Length")

    def _fetch(self, location: str, body, stream: bool = False):
        """``body(answer)`` of the first 200 answer, retrying transient failures."""
        host = urlsplit(location).netloc
        if host in self.unreachable:
            raise ArchiveUnavailable("download_failed", f"{location}: not tried, {host} was unreachable earlier "
                                                        f"in this run ({self.unreachable[host]})")
        reached = False
        for attempt in range(self.attempts):
            try:
                with self.session.get(location, timeout=self.timeout, stream=stream) as answer:
                    reached = True
                    if answer.status_code in NOT_PUBLISHED:
                        raise ArchiveUnavailable("not_published", f"{location} answered {answer.status_code}")
                    if answer.status_code == 200:
                        return body(answer)
                    failure = f"HTTP {answer.status_code}"
            except requests.RequestException as err:  # refused, timed out, or cut off mid-file
                failure = type(err).__name__
            if attempt < self.attempts - 1:
                time.sleep(backoff_seconds(attempt, self.retry_base, self.rng))
        if not reached:
            self.unreachable[host] = f"{failure} after {self.attempts} attempts"
        raise ArchiveUnavailable("download_failed", f"{location}: {failure} after {self.attempts} attempts")


class DownloadingArchive:
    """What every archive format holds, whatever its layout: the venue's universe entry and its
    ``archive:`` setting, the counts of what was fetched, and the downloader its files come through."""

    def __init__(self, config: ExchangeConfig, egress_address: str | None = None):
        assert config.archive is not None
        self.config, self.archive = config, config.archive
        self.stats = ArchiveStats()
        self.downloader = Downloader(config.timeout_seconds, egress_address, self.stats,
                                     retry_base_seconds=config.retry_base_seconds)

    @staticmethod
    def signature_of(archive: ArchiveConfig) -> str:
        """What the archive is now, as far as it can be told without a request: here its setting.
        A gap given up under one signature is tried again under another."""
        return archive.signature()
