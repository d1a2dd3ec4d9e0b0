"""Downloading archive files: plain HTTP GETs with retries on transient failures (archives are
static files behind a CDN, with no request-weight budget), or a local path read as it is."""

from __future__ import annotations

import random
import time
from pathlib import Path

import requests

from ohlcv_assets.archive import ArchiveStats, ArchiveUnavailable
from ohlcv_assets.exchange.egress import bind_session
from ohlcv_assets.exchange.retrying import backoff_seconds

NOT_PUBLISHED = (403, 404)  # S3-backed archives answer 403 for a key that does not exist


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


class Downloader:
    def __init__(self, timeout_seconds: float, egress_address: str | None, stats: ArchiveStats, attempts: int = 5,
                 retry_base_seconds: float = 0.5):
        self.session = bind_session(requests.Session(), egress_address)
        self.timeout, self.stats, self.attempts, self.retry_base = timeout_seconds, stats, attempts, retry_base_seconds
        self.rng = random.Random()

    def get(self, location: str, checksum: bool = False) -> bytes:
        """The file's bytes; ArchiveUnavailable("not_published") if the archive has no such file.
        ``checksum``: a published sha256 file, counted apart from the data files."""
        if not is_url(location):
            path = Path(location)
            if not path.is_file():
                raise ArchiveUnavailable("not_published", f"{location} does not exist")
            return path.read_bytes()
        for attempt in range(self.attempts):
            try:
                answer = self.session.get(location, timeout=self.timeout)
            except requests.RequestException as err:
                failure = f"{type(err).__name__}"
            else:
                if answer.status_code in NOT_PUBLISHED:
                    raise ArchiveUnavailable("not_published", f"{location} answered {answer.status_code}")
                if answer.status_code == 200:
                    if checksum:
                        self.stats.checksums_fetched += 1
                    else:
                        self.stats.files_downloaded += 1
                        self.stats.bytes_downloaded += len(answer.content)
                    return answer.content
                failure = f"HTTP {answer.status_code}"
            if attempt < self.attempts - 1:
                time.sleep(backoff_seconds(attempt, self.retry_base, self.rng))
        raise ArchiveUnavailable("download_failed", f"{location}: {failure} after {self.attempts} attempts")

    def save(self, location: str, target: Path) -> Path:
        """Streams a large file to ``target`` (kept: the next run reads it from there)."""
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        with self.session.get(location, timeout=self.timeout, stream=True) as answer:
            if answer.status_code in NOT_PUBLISHED:
                raise ArchiveUnavailable("not_published", f"{location} answered {answer.status_code}")
            if answer.status_code != 200:
                raise ArchiveUnavailable("download_failed", f"{location}: HTTP {answer.status_code}")
            with open(partial, "wb") as out:
                for chunk in answer.iter_content(1 << 20):
                    out.write(chunk)
                    self.stats.bytes_downloaded += len(chunk)
        self.stats.files_downloaded += 1
        partial.rename(target)
        return target
