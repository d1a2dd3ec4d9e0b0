"""Kraken's downloadable OHLCVT archive: zips of ``{PAIR}_{minutes}.csv`` (no header:
``timestamp_s, open, high, low, close, volume, trades``; intervals without trades absent), one
full file and quarterly incremental ones, which Kraken publishes for manual download. The universe
points ``archive.url`` at one zip (a URL or a local path), at a local directory of them, or lists
several (the full zip and the quarterly ones published after it); a zip from a URL is downloaded
once into the cache (``OHLCV_ARCHIVE_CACHE``) and read from there.

This is how a Kraken instrument gets more than the 720 candles its REST API serves. The files
have no published checksum: each day records the sha256 of the zip it came from. Their members
are streamed (pyarrow's incremental reader), so a pair's decade of minutes is never in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ohlcv_assets.archive import ArchiveFile, ArchiveUnavailable, LoadedFile, sha256_of
from ohlcv_assets.archive.download import DownloadingArchive, is_url
from ohlcv_assets.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.core.intervals import DAY_MS, day_bounds_ms, interval_ms
from ohlcv_assets.core.settings import archive_cache_dir
from ohlcv_assets.core.universe import ArchiveConfig

OHLCVT_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume", "trades"]
_TYPES = {**{c: pa.float64() for c in OHLCVT_COLUMNS}, "timestamp": pa.int64(), "trades": pa.int64()}
_ALTNAMES = {"BTC": "XBT", "DOGE": "XDG"}  # Kraken's own codes for these assets, used in the file names


def pair_file_name(symbol: str, interval: str) -> str:
    """BTC/USD, 1m -> XBTUSD_1.csv (Kraken's pair altname and the interval in minutes)."""
    base, quote = symbol.split(":", 1)[0].split("/")
    return f"{_ALTNAMES.get(base, base)}{_ALTNAMES.get(quote, quote)}_{interval_ms(interval) // 60_000}.csv"


def read_ohlcvt(zip_path: str | Path, member_name: str, lo_ms: int, hi_ms: int) -> tuple[pd.DataFrame, tuple[int, int] | None]:
    """The member's candles opening in [lo_ms, hi_ms), read in blocks and stopped once past hi_ms;
    with the span of days the member holds within [lo_ms, hi_ms) (None: no candle there)."""
    try:
        with zipfile.ZipFile(zip_path) as zipped:
            members = [m for m in zipped.namelist() if m.rsplit("/", 1)[-1] == member_name]
            if not members:
                return _frame(np.empty(0, np.int64), {}), None
            parts, first, last = [], None, None
            with zipped.open(members[0]) as stream:
                reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(column_names=OHLCVT_COLUMNS, block_size=1 << 22),
                                        convert_options=pacsv.ConvertOptions(column_types=_TYPES), memory_pool=pa.system_memory_pool())
                for batch in reader:
                    times = batch.column(0).to_numpy() * 1000
                    if len(times) == 0:
                        continue
                    first = int(times[0]) if first is None else first
                    last = int(times[-1])
                    keep = (times >= lo_ms) & (times < hi_ms)
                    if keep.any():
                        parts.append({name: batch.column(i).to_numpy()[keep] for i, name in enumerate(OHLCVT_COLUMNS)})
                    if last >= hi_ms:
                        break
    except (zipfile.BadZipFile, EOFError, OSError, pa.ArrowInvalid) as err:
        raise ArchiveUnavailable("unreadable", f"{Path(zip_path).name}: {err}") from None
    if first is None:
        return _frame(np.empty(0, np.int64), {}), None
    columns = {name: np.concatenate([p[name] for p in parts]) for name in OHLCVT_COLUMNS} if parts else {}
    times = columns.pop("timestamp", np.empty(0, np.int64)) * 1000
    covers = (max(lo_ms, first // DAY_MS * DAY_MS), min(hi_ms, (last // DAY_MS + 1) * DAY_MS))
    return _frame(times, columns), covers if covers[0] < covers[1] else None


def _frame(times: np.ndarray, columns: dict) -> pd.DataFrame:
    frame = pd.DataFrame({"open_time": times.astype(np.int64)})
    for column in [*CANDLE_COLUMNS[1:], *EXTRA_COLUMNS]:
        frame[column] = columns[column].astype(np.float64) if column in columns else np.nan
    return frame


def _locations(archive: ArchiveConfig) -> list[str]:
    return archive.url if isinstance(archive.url, list) else [archive.url]


def listed_zips(archive: ArchiveConfig) -> list[str]:
    """The zips the setting names: its URLs and paths, a directory's zips in name order."""
    zips = []
    for location in _locations(archive):
        if not is_url(location) and Path(location).is_dir():
            zips += sorted(str(p) for p in Path(location).glob("*.zip"))
        else:
            zips.append(location)
    return zips


class KrakenOhlcvtArchive(DownloadingArchive):
    @staticmethod
    def signature_of(archive: ArchiveConfig) -> str:
        """The setting and each local zip's name, size and modification time: a quarterly zip
        dropped into a listed directory, or a full zip replaced by a newer one, changes it without
        any change to the setting. A zip given as a URL counts by its URL only (no request)."""
        parts = [archive.signature()]
        for location in listed_zips(archive):
            if is_url(location):
                continue
            try:
                stat = Path(location).stat()
            except OSError:
                parts.append(f"{location} absent")
            else:
                parts.append(f"{location} {stat.st_size} {stat.st_mtime_ns}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def _zips(self) -> list[str]:
        return listed_zips(self.archive)

    def plan(self, symbol: str, interval: str, days: list[dt.date], today: dt.date) -> list[ArchiveFile]:
        asked = tuple(sorted(set(days)))
        return [ArchiveFile(name=location.rsplit("/", 1)[-1], location=location, kind="zip", days=asked) for location in self._zips()]

    def published_sha256(self, file: ArchiveFile) -> str | None:
        return None

    def probe(self, symbol: str, interval: str, today: dt.date) -> str:
        """Each zip (or directory of zips) the universe names."""
        return "; ".join(self.downloader.check(location) for location in _locations(self.archive))

    def read(self, symbol: str, interval: str, file: ArchiveFile) -> tuple[Path, str]:
        """The zip's local path: a URL's download in the cache, or the local file named."""
        if is_url(file.location):
            cached = archive_cache_dir() / "kraken" / hashlib.sha256(file.location.encode()).hexdigest()[:16] / file.name
            path = self.downloader.save(file.location, cached)
        else:
            path = Path(file.location)
            if not path.is_file():
                raise ArchiveUnavailable("not_published", f"{path} does not exist")
        return path, sha256_of(path)

    def parse(self, symbol: str, interval: str, file: ArchiveFile, data: Path) -> LoadedFile:
        lo, hi = day_bounds_ms(file.days[0])[0], day_bounds_ms(file.days[-1])[1]
        try:
            frame, covers = read_ohlcvt(data, pair_file_name(symbol, interval), lo, hi)
        except ArchiveUnavailable:
            if is_url(file.location):  # a download cut short is not kept: the next attempt fetches it again
                data.unlink(missing_ok=True)
            raise
        return LoadedFile(frame, "", covers or (lo, lo))
