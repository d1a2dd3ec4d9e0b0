"""Downloading archive files: plain HTTP GETs with retries on transient failures (archives are
static files behind a CDN, with no request-weight budget), or a local path read as it is."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
import urllib3

from ohlcv_assets.archive import ArchiveStats, ArchiveUnavailable
from ohlcv_assets.http.egress import bind_session
from ohlcv_assets.http.backoff import backoff_seconds

if TYPE_CHECKING:
    from ohlcv_assets.core.universe import ArchiveConfig, ExchangeConfig

NOT_PUBLISHED = (403, 404)  # S3-backed archives answer 403 for a key that does not exist


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


HOST_FAILURE_FILES = 3
"""Files in a row whose every download attempt failed (timeouts, 5xx, answers cut off) after which
the host is not asked again in the run. One or two such files are the files' problem (a slow or
damaged object on a CDN that serves the files beside it): only their days come from REST. Three
different files in a row, each failing all its attempts, mean the host is not serving files now;
asking on would cost ``attempts`` × the timeout per remaining file (hours on a deep backfill of
daily files) for days REST fills anyway. A host that was never connected to (refused, DNS, connect
timeout) is skipped after its first file."""


def is_host_failure(err: requests.RequestException) -> bool:
    """Whether a failed request never reached the host: its name did not resolve, the connection was
    refused or not accepted within the timeout. A timeout while the answer is read, an error status
    or an answer cut off mid-file is the file's failure, not the host's."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(err, requests.ConnectionError) and isinstance(reason, urllib3.exceptions.NewConnectionError)


class Downloader:
    """GETs with retries. A file whose attempts all fail is that file's failure (its days are a hole
    REST fills); the host is not asked again by this downloader (one run) only after a host-level
    failure: a file none of whose attempts could connect (refused, DNS, connect timeout), or
    ``HOST_FAILURE_FILES`` files in a row failing. Each later file of a skipped host is then a hole at
    once, instead of another round of retries per file (with a mirror down, minutes per file on a
    deep backfill)."""

    def __init__(self, timeout_seconds: float, egress_address: str | None, stats: ArchiveStats, attempts: int = 5,
                 retry_base_seconds: float = 0.5):
        self.session = bind_session(requests.Session(), egress_address)
        self.timeout, self.stats, self.attempts, self.retry_base = timeout_seconds, stats, attempts, retry_base_seconds
        self.rng = random.Random()
        self.skipped: dict[str, str] = {}  # host -> why it is not asked again in this run
        self.failing: dict[str, int] = {}  # host -> files failed in a row since the last file it served

    def get(self, location: str, checksum: bool = False) -> bytes:
        """The file's bytes; ArchiveUnavailable("not_published") if the archive has no such file.
        ``checksum``: a published sha256 file, counted apart from the data files."""
        if not is_url(location):
            path = Path(location)
            if not path.is_file():
                raise ArchiveUnavailable("not_published", f"{location} does not exist")
            return path.read_bytes()
        content = self._fetch(location, lambda answer: answer.content, checksum=checksum)
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
        if urlsplit(location).netloc in self.skipped:
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

    def _fetch(self, location: str, body, stream: bool = False, checksum: bool = False):
        """``body(answer)`` of the first 200 answer, retrying transient failures. A data file served
        (not a ``checksum``) ends the host's run of failing files."""
        host = urlsplit(location).netloc
        if host in self.skipped:
            raise ArchiveUnavailable("download_failed", f"{location}: not tried: {host} is not asked again in this run "
                                                        f"({self.skipped[host]})")
        connected = False
        for attempt in range(self.attempts):
            try:
                with self.session.get(location, timeout=self.timeout, stream=stream) as answer:
                    connected = True
                    if answer.status_code in NOT_PUBLISHED:
                        raise ArchiveUnavailable("not_published", f"{location} answered {answer.status_code}")
                    if answer.status_code == 200:
                        result = body(answer)
                        if not checksum:
                            self.failing[host] = 0
                        return result
                    failure = f"HTTP {answer.status_code}"
            except requests.RequestException as err:  # refused, timed out, or cut off mid-file
                connected = connected or not is_host_failure(err)
                failure = type(err).__name__
            if attempt < self.attempts - 1:
                time.sleep(backoff_seconds(attempt, self.retry_base, self.rng))
        detail = f"{location}: {failure} after {self.attempts} attempts"
        self.failing[host] = self.failing.get(host, 0) + 1
        if not connected:
            self.skipped[host] = f"it could not be connected to: {failure} on each of {self.attempts} attempts"
        elif self.failing[host] >= HOST_FAILURE_FILES:
            self.skipped[host] = f"{self.failing[host]} files in a row failed, the last with {failure} after {self.attempts} attempts"
        if host in self.skipped:
            detail += f"; {host} is not asked again in this run"
        raise ArchiveUnavailable("download_failed", detail)


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
