"""The venues' bulk archives, served from the same deterministic market as their REST APIs (so
archive and REST agree unless a fault says otherwise):

- Binance public data (``<url>/archive/binance/data/...``, data.binance.vision's layout): daily
  and monthly kline zips with ``.zip.CHECKSUM`` siblings (``futures/um`` also its mark price, index
  price and premium index klines: ``markPriceKlines``, ``indexPriceKlines``, ``premiumIndexKlines``,
  the same layout, rows as the REST endpoints' with volumes 0), and monthly funding rate files
  ``futures/um/monthly/fundingRate/{SYM}/{SYM}-fundingRate-{YYYY-MM}.zip`` and daily statistics
  (open interest every 5 minutes) ``futures/um/daily/metrics/{SYM}/{SYM}-metrics-{YYYY-MM-DD}.zip``; spot times in microseconds from
  2025-01-01; futures files with a header from ``FUTURES_HEADER_FROM`` on; a daily file appears
  ``daily_delay_minutes`` after its day, a monthly one ``monthly_delay_days`` after its month
  (``venues: {binance_archive: {...}}``).
- Kraken OHLCVT (``<url>/archive/kraken/Kraken_OHLCVT.zip``: from ``start`` (default a year before
  its end) to the end of the last complete quarter, or to ``end`` for a full file published
  earlier; ``Kraken_OHLCVT_<YYYY>Q<n>.zip``: one quarter),
  a ``{PAIR}_{minutes}.csv`` per pair and interval, no header, intervals without trades absent.

Faults (``archive_faults``: ``{kind, file, count}``, ``file`` a substring of the path, ``count``
the requests it fires on, all if left out): ``missing`` (404: not published yet), ``holey`` (rows
left out), ``bad_checksum`` (bytes that do not match the published sha256), ``truncated`` (the zip
cut short), ``disagree`` (some candles' volumes differ from the API's; a price series' closes),
``malformed`` (a CSV
of 13 columns, as a changed format would be), ``impossible`` (a candle's high below its low),
``slow`` (the file's download answered only after ``seconds``, its checksum at once: past the
client's timeout, a file that times out while the files beside it are served); holey, disagreeing,
malformed and impossible files are published as they are, so their checksums match.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import hashlib
import io
import re
import threading
import time
import zipfile

import numpy as np

from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms, interval_ms
from ohlcv_assets.simulator.binance import CSV_KLINE, SUPPORTED_INTERVALS, kline_rows, price_kline_rows, signed_decimals
from ohlcv_assets.simulator.kraken import asset_id
from ohlcv_assets.simulator.market import PRICE_DECIMALS, VOLUME_DECIMALS, CandleArrays
from ohlcv_assets.simulator.protocol import Answer, ApiError, Protocol, Request, fixed_point

MICROSECONDS_FROM = dt.date(2025, 1, 1)
FUTURES_HEADER_FROM = dt.date(2022, 1, 1)
KLINE_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
ARCHIVE_FAULT_KINDS = {"missing", "holey", "bad_checksum", "truncated", "disagree", "malformed", "impossible", "slow"}
PUBLISHED_AS_THEY_ARE = ("holey", "disagree", "malformed", "impossible")  # the file is built so; others damage a download
KRAKEN_MINUTES = (1, 5, 15, 60, 240, 720, 1440)
_BINANCE_TREES = {"spot": "binance", "futures/um": "binanceusdm", "futures/cm": "binancecoinm"}  # tree -> venue
_BINANCE_PATH = re.compile(r"/data/(spot|futures/um|futures/cm)/(daily|monthly)/"
                           r"(klines|markPriceKlines|indexPriceKlines|premiumIndexKlines)/([A-Z0-9]+)/(\w+)/"
                           r"\4-\5-(\d{4}-\d{2}(?:-\d{2})?)\.zip(\.CHECKSUM)?")
# a candles tree's series: USDⓈ-M's mark price, index price and premium index klines beside its klines
_KLINES_SERIES = {"klines": "trades", "markPriceKlines": "mark", "indexPriceKlines": "index", "premiumIndexKlines": "premium"}
_FUNDING_PATH = re.compile(r"/data/futures/um/monthly/fundingRate/([A-Z0-9]+)/\1-fundingRate-(\d{4}-\d{2})\.zip(\.CHECKSUM)?")
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate\n"
_METRICS_PATH = re.compile(r"/data/futures/um/daily/metrics/([A-Z0-9]+)/\1-metrics-(\d{4}-\d{2}-\d{2})\.zip(\.CHECKSUM)?")
METRICS_HEADER = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                  "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n")
_KRAKEN_PATH = re.compile(r"/Kraken_OHLCVT(?:_(\d{4})Q([1-4]))?\.zip")


@dataclasses.dataclass
class ArchiveFault:
    kind: str
    file: str
    count: int | None = None
    seconds: float = 1.0  # slow: how long the answer waits
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ARCHIVE_FAULT_KINDS:
            raise ValueError(f"unknown archive fault kind {self.kind!r} (known: {sorted(ARCHIVE_FAULT_KINDS)})")

    def fires(self, path: str) -> bool:
        if self.file not in path or (self.count is not None and self.fired >= self.count):
            return False
        self.fired += 1
        return True


class FileCache:
    """Built files by path: real archives are static files, so each is built once (up to a size)."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.files: dict[str, bytes] = {}
        self.size, self.max_bytes = 0, max_bytes
        self.lock = threading.Lock()

    def get(self, key: str, build) -> bytes:
        with self.lock:
            if key in self.files:
                return self.files[key]
        data = build()
        with self.lock:
            if self.size + len(data) <= self.max_bytes:
                self.files[key] = data
                self.size += len(data)
        return data


def _zip(members: dict[str, str]) -> bytes:
    """A zip of the members, the same bytes every time (fixed member dates), as a static file is."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for name, text in members.items():
            zipped.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _checksum(path: str, data: bytes) -> Answer:
    """The ``.CHECKSUM`` of a file as built (``sha256sum`` format): faults that damage bytes come after."""
    name = path.rsplit("/", 1)[-1].removesuffix(".CHECKSUM")
    return Answer(200, f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode(), {"Content-Type": "text/plain"})


def _holey(c: CandleArrays) -> CandleArrays:
    """A hole of 30 rows in the middle (binance-public-data #230)."""
    mid = len(c) // 2
    keep = np.ones(len(c), dtype=bool)
    keep[mid:mid + 30] = False
    return c.take(keep)


def _disagreeing(c: CandleArrays, series: str = "trades") -> CandleArrays:
    """Five candles with volumes 2 % higher than the API's (binance-public-data #475); a price
    series (no volume): their closes at their highs."""
    if series != "trades":
        close = c.close.copy()
        close[10:15] = c.high[10:15]
        return dataclasses.replace(c, close=close)
    volume = c.volume.copy()
    volume[10:15] = volume[10:15] * 102 // 100
    return dataclasses.replace(c, volume=volume)


def _impossible(c: CandleArrays) -> CandleArrays:
    """One candle whose high is a tick below its low (a file read right, holding a candle no market makes)."""
    high = c.high.copy()
    high[20] = c.low[20] - 1
    return dataclasses.replace(c, high=high)


class Archives(Protocol):
    name = "archive"
    prefix = "/archive"

    def budget(self, sim):
        raise NotImplementedError  # archives are static files: no request budget

    def error(self, err: ApiError) -> Answer:
        return Answer(err.status, f"<Error><Code>NoSuchKey</Code><Message>{err.msg}</Message></Error>".encode(),
                      {"Content-Type": "application/xml"})

    def handle(self, sim, request: Request) -> Answer:
        path = request.path
        is_checksum = path.endswith(".CHECKSUM")
        faults = []
        with sim.lock:
            for fault in sim.archive_faults:
                if is_checksum and fault.kind in ("bad_checksum", "truncated", "slow"):
                    continue  # these damage (or delay) the download of a file, not what is published
                if is_checksum and fault.kind in PUBLISHED_AS_THEY_ARE:  # so the checksum matches
                    if fault.file in path and (fault.count is None or fault.fired < fault.count):
                        faults.append(fault)
                elif fault.fires(path):
                    faults.append(fault)
        kinds = {f.kind for f in faults}
        sim.count("archive.requests")
        if "slow" in kinds:
            time.sleep(max(f.seconds for f in faults if f.kind == "slow"))
        if "missing" in kinds:
            raise ApiError(404, 404, "The specified key does not exist.")
        if (match := _BINANCE_PATH.fullmatch(path.removeprefix("/binance"))) is not None and path.startswith("/binance/"):
            data = self._binance(sim, match, kinds - {"truncated", "bad_checksum", "slow"})
            if match.group(7):  # the .CHECKSUM of the file as built (faults that damage bytes come after)
                return _checksum(path, data)
        elif (match := _FUNDING_PATH.fullmatch(path.removeprefix("/binance"))) is not None and path.startswith("/binance/"):
            data = self._funding(sim, match, kinds - {"truncated", "bad_checksum", "slow"})
            if match.group(3):
                return _checksum(path, data)
        elif (match := _METRICS_PATH.fullmatch(path.removeprefix("/binance"))) is not None and path.startswith("/binance/"):
            data = self._metrics(sim, match, kinds - {"truncated", "bad_checksum", "slow"})
            if match.group(3):
                return _checksum(path, data)
        elif (match := _KRAKEN_PATH.fullmatch(path.removeprefix("/kraken"))) is not None and path.startswith("/kraken/"):
            data = self._kraken(sim, match)
        else:
            raise ApiError(404, 404, "The specified key does not exist.")
        if "bad_checksum" in kinds:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if "truncated" in kinds:
            data = data[: len(data) // 2]
        sim.count("archive.files_served")
        sim.count("archive.bytes_served", len(data))
        return Answer(200, data, {"Content-Type": "application/zip"})

    def _binance(self, sim, match: re.Match, kinds: set[str]) -> bytes:
        market, kind, tree, sym, interval, period, _ = match.groups()
        venue, series = _BINANCE_TREES[market], _KLINES_SERIES[tree]
        symbol = sim.symbol(venue, sym)
        if symbol is None or interval not in SUPPORTED_INTERVALS or (series != "trades" and market != "futures/um"):
            raise ApiError(404, 404, "The specified key does not exist.")
        if kind == "daily":
            first = last = dt.date.fromisoformat(period)
        else:
            year, month = map(int, period.split("-"))
            first, last = dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
        lo, hi = day_bounds_ms(first)[0], day_bounds_ms(last)[1]
        limits = sim.config.venue("binance_archive")
        delay = (float(limits.get("daily_delay_minutes", 60)) * MINUTE_MS if kind == "daily"
                 else float(limits.get("monthly_delay_days", 1)) * DAY_MS)
        now = sim.now()
        if now < hi + delay:
            raise ApiError(404, 404, "The specified key does not exist.")
        key = f"{match.group(0).removesuffix('.CHECKSUM')}|{sorted(kinds)}"  # a file and its checksum: one build

        def build() -> bytes:
            step = interval_ms(interval)
            c = sim.market.candles(symbol, step, lo, hi, now, venue=venue, series=series)
            if len(c) == 0:
                raise ApiError(404, 404, "The specified key does not exist.")
            if "holey" in kinds:
                c = _holey(c)
            if "disagree" in kinds:
                c = _disagreeing(c, series)
            if "impossible" in kinds:
                c = _impossible(c)
            extra = ",0" if "malformed" in kinds else ""
            rows = self._binance_rows(c, step, market, first) if series == "trades" else price_kline_rows(c, step, series, quoted=False)
            text = "".join(row + extra + "\n" for row in rows)
            header = KLINE_HEADER if market != "spot" and first >= FUTURES_HEADER_FROM else ""
            return _zip({f"{sym}-{interval}-{period}.csv": header + text})

        return sim.archive_cache.get(key, build)

    def _funding(self, sim, match: re.Match, kinds: set[str]) -> bytes:
        """A month of a USDⓈ-M perpetual's funding settlements (``calc_time`` the venue's own time,
        ``funding_interval_hours`` the interval ending there, ``last_funding_rate``), published
        ``monthly_delay_days`` after its month; monthly only (there are no daily funding files)."""
        sym, period, _ = match.groups()
        symbol = sim.symbol("binanceusdm", sym)
        if symbol is None:
            raise ApiError(404, 404, "The specified key does not exist.")
        year, month = map(int, period.split("-"))
        lo = day_bounds_ms(dt.date(year, month, 1))[0]
        hi = day_bounds_ms(dt.date(year, month, calendar.monthrange(year, month)[1]))[1]
        now = sim.now()
        if now < hi + float(sim.config.venue("binance_archive").get("monthly_delay_days", 1)) * DAY_MS:
            raise ApiError(404, 404, "The specified key does not exist.")

        def build() -> bytes:
            events = sim.market.funding_events(symbol, now)
            keep = (events["nominal"] >= lo) & (events["nominal"] < hi)
            if not keep.any():
                raise ApiError(404, 404, "The specified key does not exist.")
            times, hours, rates = events["time"][keep], events["hours"][keep], events["rate"][keep].copy()
            if "disagree" in kinds:
                rates[3:5] += 1  # two settlements' rates a unit (1e-8) off the API's
            if "holey" in kinds:
                keep_rows = np.ones(len(times), dtype=bool)
                keep_rows[len(times) // 2:len(times) // 2 + 3] = False
                times, hours, rates = times[keep_rows], hours[keep_rows], rates[keep_rows]
            extra = ",0" if "malformed" in kinds else ""
            text = "".join(f"{t},{h},{r}{extra}\n" for t, h, r in zip(times.tolist(), hours.tolist(), signed_decimals(rates, 8)))
            return _zip({f"{sym}-fundingRate-{period}.csv": FUNDING_HEADER + text})

        return sim.archive_cache.get(f"{match.group(0).removesuffix('.CHECKSUM')}|{sorted(kinds)}", build)

    def _metrics(self, sim, match: re.Match, kinds: set[str]) -> bytes:
        """A day of a USDⓈ-M perpetual's statistics every 5 minutes (``create_time`` a UTC datetime
        string, open interest in contracts and in quote, then four long/short ratios), published
        ``daily_delay_minutes`` after its day; daily files only (there are no monthly metrics)."""
        sym, day, _ = match.groups()
        symbol = sim.symbol("binanceusdm", sym)
        if symbol is None:
            raise ApiError(404, 404, "The specified key does not exist.")
        lo, hi = day_bounds_ms(dt.date.fromisoformat(day))
        now = sim.now()
        if now < hi + float(sim.config.venue("binance_archive").get("daily_delay_minutes", 60)) * MINUTE_MS:
            raise ApiError(404, 404, "The specified key does not exist.")

        def build() -> bytes:
            rows = sim.market.open_interest(symbol, 5 * MINUTE_MS, lo, hi, now, venue="binanceusdm")
            if not len(rows["time"]):
                raise ApiError(404, 404, "The specified key does not exist.")
            times, amounts, values = rows["time"], rows["amount"], rows["value"].copy()
            if "disagree" in kinds:
                values[10:12] += 1
            if "holey" in kinds:
                keep = np.ones(len(times), dtype=bool)
                keep[len(times) // 2:len(times) // 2 + 6] = False
                times, amounts, values = times[keep], amounts[keep], values[keep]
            extra = ",0" if "malformed" in kinds else ""
            stamps = [dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in times.tolist()]
            text = "".join(f"{c},{sym},{a},{v},1.5,1.5,1.2,0.95{extra}\n" for c, a, v in
                           zip(stamps, signed_decimals(amounts, 3), signed_decimals(values, 5, 8)))
            return _zip({f"{sym}-metrics-{day}.csv": METRICS_HEADER + text})

        return sim.archive_cache.get(f"{match.group(0).removesuffix('.CHECKSUM')}|{sorted(kinds)}", build)

    @staticmethod
    def _binance_rows(c: CandleArrays, step: int, market: str, first: dt.date) -> list[str]:
        micro = market == "spot" and first >= MICROSECONDS_FROM  # a monthly file never straddles the switch
        return kline_rows(c, step, CSV_KLINE, 1000 if micro else 1)

    def _kraken(self, sim, match: re.Match) -> bytes:
        now = sim.now()
        today = dt.datetime.fromtimestamp(now / 1000, dt.timezone.utc).date()
        quarter_end = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)  # the last complete quarter ends here
        limits = sim.config.venue("kraken_archive")
        if match.group(1):
            year, quarter = int(match.group(1)), int(match.group(2))
            start = dt.date(year, 3 * quarter - 2, 1)
            end = dt.date(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1)
            if end > quarter_end:
                raise ApiError(404, 404, "The specified key does not exist.")
        else:
            end = min(quarter_end, dt.date.fromisoformat(str(limits["end"]))) if "end" in limits else quarter_end
            start = dt.date.fromisoformat(str(limits["start"])) if "start" in limits else end - dt.timedelta(days=365)
        minutes = tuple(int(m) for m in limits.get("intervals", KRAKEN_MINUTES))
        lo, hi = day_bounds_ms(start)[0], day_bounds_ms(end)[0]

        def build() -> bytes:
            return _zip({f"{asset_id(s.base)[1]}{asset_id(s.quote)[1]}_{m}.csv":
                         _kraken_csv(sim.market.candles(s, m * MINUTE_MS, lo, hi, now, omit_empty=True, venue="kraken"))
                         for s in sim.listed("kraken") for m in minutes})

        return sim.archive_cache.get(f"{match.group(0)}|{start}|{end}|{minutes}", build)


def _kraken_csv(c: CandleArrays) -> str:
    prices = [fixed_point(p, PRICE_DECIMALS, PRICE_DECIMALS) for p in (c.open, c.high, c.low, c.close)]
    volume = fixed_point(c.volume, VOLUME_DECIMALS, VOLUME_DECIMALS)
    return "".join(f"{t // 1000},{o},{h},{lo},{cl},{v},{n}\n" for t, o, h, lo, cl, v, n in
                   zip(c.open_time.tolist(), *prices, volume, c.trades.tolist()))
