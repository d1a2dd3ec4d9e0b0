"""Deterministic simulated market: the candles the bundled exchange simulator serves.

Every 1m candle is a pure function of (seed, symbol, open time), so any range can be generated
directly, vectorised, without replaying history; tests use the same functions as the reference.
Prices are integer ticks and volumes integer lots, so aggregating 1m candles into longer
intervals is exact, as on a real exchange.

Some minutes have no trades (a symbol's ``quiet`` share): venues that emit them (Binance) send a
flat zero-volume candle, venues that omit them (Kraken, Coinbase, Polygon) send nothing and
aggregate longer intervals from the minutes that traded. A symbol with a ``calendar`` (equities)
trades only inside that exchange's sessions, and with ``extended_hours`` also before and after
them (pre-market and after-hours, 04:00-20:00 New York), where most minutes see no trade.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib

import numpy as np

from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.core.intervals import grid_ceil
from ohlcv_assets.core.sessions import EXTENDED, REGULAR, sessions_for

PRICE_DECIMALS = 2
PREMIUM_DECIMALS = 8  # premium index values and funding rates: signed, in units of 1e-8
OI_DECIMALS = 3  # open interest amounts: contracts in units of 1e-3
FUNDING_CAP = 2_000_000  # a funding rate's cap and floor (+-0.02), in units of 1e-8
PRICE_SERIES = ("mark", "index", "premium")  # a perpetual's price klines beside its trade klines
VOLUME_DECIMALS = 5
WIRE_DECIMALS = 8  # Binance sends every price and quantity with eight decimals


EXTENDED_HOURS_QUIET = 0.6  # share of pre-market and after-hours minutes without trades
CRYPTO_VENUES = ("binance", "binanceusdm", "kraken", "coinbase")  # where a symbol trades unless told


@dataclasses.dataclass(frozen=True)
class SimSymbol:
    base: str
    quote: str
    listed: dt.date
    price: float = 100.0
    quiet: float = 0.0  # share of minutes without trades
    calendar: str | None = None  # exchange-calendars code: trades only in sessions
    extended_hours: bool = False  # with a calendar: trades in pre-market and after-hours too (sparsely)
    venues: tuple[str, ...] = CRYPTO_VENUES
    split: tuple[dt.date, int] | None = None  # (day, ratio): a stock split; the market's prices are split-adjusted
    delisted: dt.datetime | None = None  # trading stopped: no candle opens from then on; markets say inactive
    # perpetuals (binanceusdm): the funding interval over the symbol's life, ((from, hours), ...) ascending;
    # empty: every 8 hours from listing
    funding: tuple[tuple[dt.datetime, int], ...] = ()
    # settlements the venue never made (nominal times): absent from its every answer, a gap the venue confirms
    funding_missing: tuple[dt.datetime, ...] = ()

    @property
    def delisted_ms(self) -> int | None:
        return None if self.delisted is None else int(self.delisted.timestamp() * 1000)

    def trading(self, now_ms: int) -> bool:
        return self.delisted is None or now_ms < self.delisted_ms

    @property
    def exchange_symbol(self) -> str:
        return f"{self.base}{self.quote}"

    @property
    def listed_ms(self) -> int:
        return day_bounds_ms(self.listed)[0]


@dataclasses.dataclass(frozen=True)
class Downtime:
    """An exchange outage: no 1m candle opens in [start, end)."""

    start: dt.datetime
    end: dt.datetime
    venue: str | None = None  # None: every venue

    @property
    def bounds_ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)


@dataclasses.dataclass(frozen=True)
class CandleArrays:
    """Candles as parallel integer arrays: prices in ticks, volume in lots."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray  # 0: nobody traded (a flat, zero-volume candle)

    def __len__(self) -> int:
        return len(self.open_time)

    def take(self, index) -> CandleArrays:
        return CandleArrays(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def as_floats(self) -> dict[str, np.ndarray]:
        """Exchange units: what a client that parsed the wire strings holds."""
        return {
            "open_time": self.open_time,
            "open": self.open / 10**PRICE_DECIMALS,
            "high": self.high / 10**PRICE_DECIMALS,
            "low": self.low / 10**PRICE_DECIMALS,
            "close": self.close / 10**PRICE_DECIMALS,
            "volume": self.volume / 10**VOLUME_DECIMALS,
        }

    def vwap_ticks(self) -> np.ndarray:
        """Volume-weighted average price in ticks (float): each candle's typical price stands for its trades."""
        return (self.high + self.low + self.close) / 3


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread integer hash (wraps modulo 2**64)."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, salt: int, t_ms: np.ndarray) -> np.ndarray:
    """Deterministic uniform [0, 1) noise for each timestamp."""
    key = np.uint64((seed * 0x9E3779B97F4A7C15 + salt) % 2**64)
    return (_mix(t_ms.astype(np.uint64) ^ key) >> np.uint64(11)).astype(np.float64) / float(2**53)


class SimulatedMarket:
    def __init__(self, symbols: dict[str, SimSymbol], downtime: list[Downtime] | None = None, seed: int = 7):
        self.symbols = symbols
        self.downtime = list(downtime or [])
        self.seed = seed

    def _salt(self, symbol: SimSymbol) -> int:
        return zlib.crc32(symbol.exchange_symbol.encode())

    def _price_ticks(self, symbol: SimSymbol, t_ms: np.ndarray) -> np.ndarray:
        salt = self._salt(symbol)
        t = t_ms.astype(np.float64)
        phase = (salt % 1000) / 1000 * 2 * np.pi
        drift = 0.08 * np.sin(2 * np.pi * t / (9.3 * DAY_MS) + phase) + 0.03 * np.sin(2 * np.pi * t / DAY_MS + 2 * phase)
        wiggle = 0.004 * np.sin(2 * np.pi * t / (47 * MINUTE_MS) + phase)
        noise = 0.002 * (_uniform(self.seed, salt, t_ms) - 0.5)
        return np.round(symbol.price * 10**PRICE_DECIMALS * np.exp(drift + wiggle + noise)).astype(np.int64)

    def minute_candles(self, symbol: SimSymbol, start_ms: int, end_ms: int, now_ms: int, venue: str | None = None) -> CandleArrays:
        """1m candles opening in [start_ms, end_ms) that exist at now_ms (the last may be forming),
        minutes without trades included as flat zero-volume candles (``trades`` 0). Minutes outside
        the symbol's sessions and in an outage of ``venue`` do not exist."""
        first = max(start_ms, symbol.listed_ms)
        first = grid_ceil(first, MINUTE_MS)
        end = min(end_ms, now_ms + 1, symbol.delisted_ms or end_ms)
        t = np.arange(first, max(first, end), MINUTE_MS, dtype=np.int64)
        for outage in self.downtime:
            if outage.venue is None or venue is None or outage.venue == venue:
                lo, hi = outage.bounds_ms
                t = t[(t < lo) | (t >= hi)]
        quiet = np.full(len(t), symbol.quiet)
        if symbol.calendar is not None and len(t):
            window = EXTENDED if symbol.extended_hours else REGULAR
            t = t[np.isin(t, sessions_for(symbol.calendar, window).expected(int(t[0]), int(t[-1]) + MINUTE_MS, MINUTE_MS), assume_unique=True)]
            regular = np.isin(t, sessions_for(symbol.calendar).expected(int(t[0]), int(t[-1]) + MINUTE_MS, MINUTE_MS), assume_unique=True) \
                if len(t) else np.zeros(0, dtype=bool)
            quiet = np.where(regular, symbol.quiet, max(symbol.quiet, EXTENDED_HOURS_QUIET))
        salt = self._salt(symbol)
        traded = _uniform(self.seed, salt + 4, t) >= quiet
        close_t = np.minimum(t + MINUTE_MS, now_ms)  # a forming candle closes at "now" so far
        elapsed = (close_t - t) / MINUTE_MS
        opens = self._price_ticks(symbol, t)
        closes = np.where(traded, self._price_ticks(symbol, close_t), opens)
        up = np.round(opens * 0.0015 * _uniform(self.seed, salt + 1, t) * elapsed).astype(np.int64) * traded
        down = np.round(opens * 0.0015 * _uniform(self.seed, salt + 3, t) * elapsed).astype(np.int64) * traded
        highs = np.maximum(opens, closes) + up
        lows = np.maximum(1, np.minimum(opens, closes) - down)
        volume = np.round((0.2 + 5 * _uniform(self.seed, salt + 2, t) ** 3) * elapsed * 10**VOLUME_DECIMALS * 100 / symbol.price ** 0.5)
        volume = volume.astype(np.int64) * traded
        trades = (1 + np.floor(40 * _uniform(self.seed, salt + 5, t))).astype(np.int64) * traded
        return CandleArrays(t, opens, highs, lows, closes, volume, trades)

    # --- a perpetual's price series and funding ----------------------------------------------
    def _basis(self, symbol: SimSymbol, t_ms: np.ndarray) -> np.ndarray:
        """The perpetual's basis over its index, a slow wave within +-0.1 %, crossing zero."""
        salt = self._salt(symbol)
        t = t_ms.astype(np.float64)
        return 0.0008 * np.sin(2 * np.pi * t / (2.7 * DAY_MS) + salt % 97) + 0.0002 * np.sin(2 * np.pi * t / (5 * 3600_000.0))

    def series_value(self, symbol: SimSymbol, series: str, t_ms: np.ndarray) -> np.ndarray:
        """The value of a price series at each instant, in integer units: mark and index in price
        ticks, premium in units of 1e-8 (signed)."""
        if series == "premium":
            noise = 0.00004 * (_uniform(self.seed, self._salt(symbol) + 12, t_ms) - 0.5)
            return np.round((self._basis(symbol, t_ms) + noise) * 10**PREMIUM_DECIMALS).astype(np.int64)
        salt = self._salt(symbol) + 10
        index = self._price_ticks(symbol, t_ms) * (1 + 0.0003 * (_uniform(self.seed, salt, t_ms) - 0.5))
        if series == "index":
            return np.round(index).astype(np.int64)
        if series == "mark":
            return np.round(index * (1 + self._basis(symbol, t_ms))).astype(np.int64)
        raise ValueError(f"unknown price series {series!r}")

    def series_minutes(self, symbol: SimSymbol, series: str, start_ms: int, end_ms: int, now_ms: int,
                       venue: str | None = None) -> CandleArrays:
        """1m candles of a price series (mark, index, premium) opening in [start_ms, end_ms) that
        exist at now_ms: the minutes of the trade candles (listing, delisting, outages), no volume,
        ``trades`` the count of per-second samples (60 a whole minute, fewer in a forming one)."""
        t = self.minute_candles(symbol, start_ms, end_ms, now_ms, venue).open_time
        close_t = np.minimum(t + MINUTE_MS, now_ms)
        opens = self.series_value(symbol, series, t)
        closes = self.series_value(symbol, series, close_t)
        salt = self._salt(symbol) + 20 + PRICE_SERIES.index(series)
        scale = np.maximum(np.abs(opens), 10**PRICE_DECIMALS) if series != "premium" else np.full(len(t), 2_000_000)
        spread = np.round(scale * 0.0004 * _uniform(self.seed, salt, t) * (close_t - t) / MINUTE_MS).astype(np.int64)
        highs = np.maximum(opens, closes) + spread // 2
        lows = np.minimum(opens, closes) - (spread - spread // 2)
        if series != "premium":
            lows = np.maximum(1, lows)
        samples = (close_t - t) // 1000
        return CandleArrays(t, opens, highs, lows, closes, np.zeros(len(t), dtype=np.int64), samples.astype(np.int64))

    def funding_segments(self, symbol: SimSymbol) -> list[tuple[int, int, int]]:
        """The symbol's funding schedule as (start_ms, end_ms, hours) segments, the last open-ended
        (end 2**62), from its listing."""
        changes = list(symbol.funding) or [(dt.datetime.combine(symbol.listed, dt.time(), dt.timezone.utc), 8)]
        starts = [max(symbol.listed_ms, int(when.timestamp() * 1000)) for when, _ in changes]
        return [(lo, hi, hours) for lo, hi, (_, hours) in zip(starts, [*starts[1:], 2**62], changes) if lo < hi]

    def funding_events(self, symbol: SimSymbol, now_ms: int) -> dict[str, np.ndarray]:
        """Every funding settlement settled by ``now_ms`` (delisting ends them): ``nominal`` (on
        the segment's grid of its interval from 00:00 UTC), ``time`` (the venue's fundingTime: a
        few ms late, as the real venue's), ``rate`` (1e-8 units, within the cap) and ``mark``
        (the mark price at the settlement, in ticks), ``hours`` (the interval ending there)."""
        end = min(now_ms, symbol.delisted_ms or now_ms)
        nominal, hours = [], []
        for lo, hi, h in self.funding_segments(symbol):
            step = h * 3_600_000
            t = np.arange(grid_ceil(lo, step), min(hi, end + 1), step, dtype=np.int64)
            t = t[t > symbol.listed_ms]  # the first settlement comes after listing
            nominal.append(t)
            hours.append(np.full(len(t), h, dtype=np.int64))
        t = np.concatenate(nominal) if nominal else np.zeros(0, dtype=np.int64)
        hours_arr = np.concatenate(hours) if hours else np.zeros(0, dtype=np.int64)
        salt = self._salt(symbol) + 30
        raw = t + np.floor(10 * _uniform(self.seed, salt, t)).astype(np.int64)  # 0-9 ms late
        missing = [int(when.timestamp() * 1000) for when in symbol.funding_missing]
        keep = (raw <= end) & ~np.isin(t, missing)
        t, raw, hours_arr = t[keep], raw[keep], hours_arr[keep]
        premium = self.series_value(symbol, "premium", t)
        rate = np.clip(10_000 + (premium - 10_000) // 4, -FUNDING_CAP, FUNDING_CAP)  # 0.01 % plus a share of the premium
        return {"nominal": t, "time": raw, "rate": rate.astype(np.int64), "mark": self.series_value(symbol, "mark", t),
                "hours": hours_arr}

    def open_interest(self, symbol: SimSymbol, period_ms: int, start_ms: int, end_ms: int, now_ms: int,
                      venue: str | None = None) -> dict[str, np.ndarray]:
        """A perpetual's open interest sampled every ``period_ms`` (on the grid) in [start_ms, end_ms),
        from its listing to ``now_ms`` (delisting ends it): ``time``, ``amount`` (contracts, in units
        of 1e-3: ``OI_DECIMALS``) and ``value`` (amount times the mark price then, in 1e-5 units). A
        coarser period's rows are the 5-minute series' rows at its times, as the venue's are. No
        sample exists in an outage of ``venue`` (as no candle does)."""
        end = min(end_ms, now_ms + 1, symbol.delisted_ms or end_ms)
        t = np.arange(grid_ceil(max(start_ms, symbol.listed_ms), period_ms), end, period_ms, dtype=np.int64)
        for outage in self.downtime:
            if outage.venue is None or venue is None or outage.venue == venue:
                lo, hi = outage.bounds_ms
                t = t[(t < lo) | (t >= hi)]
        salt = self._salt(symbol) + 40
        wave = 0.25 * np.sin(2 * np.pi * t.astype(np.float64) / (3.1 * DAY_MS) + salt % 89)
        noise = 0.01 * (_uniform(self.seed, salt, t) - 0.5)
        amount = np.round(10**OI_DECIMALS * 2_000_000 / max(symbol.price, 1.0) * (1 + wave + noise)).astype(np.int64)
        return {"time": t, "amount": amount, "value": amount * self.series_value(symbol, "mark", t)}

    def candles(self, symbol: SimSymbol, interval_ms: int, start_ms: int, end_ms: int, now_ms: int,
                omit_empty: bool = False, venue: str | None = None, series: str = "trades") -> CandleArrays:
        """Candles of an interval opening in [start_ms, end_ms), aggregated from 1m candles; with
        ``omit_empty`` (Kraken, Coinbase, Polygon) minutes without trades are left out first, so an
        interval nobody traded in is absent and the others aggregate only what traded. ``series``
        another price series of a perpetual (mark, index, premium: ``series_minutes``)."""
        start = start_ms // interval_ms * interval_ms
        if series == "trades":
            minutes = self.minute_candles(symbol, start, grid_ceil(end_ms, interval_ms), now_ms, venue)
        else:
            minutes = self.series_minutes(symbol, series, start, grid_ceil(end_ms, interval_ms), now_ms, venue)
        if omit_empty:
            minutes = minutes.take(minutes.trades > 0)
        if interval_ms == MINUTE_MS or len(minutes) == 0:
            out = minutes
        else:
            bucket = minutes.open_time // interval_ms * interval_ms
            starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
            ends = np.r_[starts[1:], len(bucket)] - 1
            out = CandleArrays(
                bucket[starts],
                minutes.open[starts],
                np.maximum.reduceat(minutes.high, starts),
                np.minimum.reduceat(minutes.low, starts),
                minutes.close[ends],
                np.add.reduceat(minutes.volume, starts),
                np.add.reduceat(minutes.trades, starts),
            )
        keep = (out.open_time >= start_ms) & (out.open_time < end_ms)
        return out.take(keep)
