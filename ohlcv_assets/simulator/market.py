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

    def candles(self, symbol: SimSymbol, interval_ms: int, start_ms: int, end_ms: int, now_ms: int,
                omit_empty: bool = False, venue: str | None = None) -> CandleArrays:
        """Candles of an interval opening in [start_ms, end_ms), aggregated from 1m candles; with
        ``omit_empty`` (Kraken, Coinbase, Polygon) minutes without trades are left out first, so an
        interval nobody traded in is absent and the others aggregate only what traded."""
        start = start_ms // interval_ms * interval_ms
        minutes = self.minute_candles(symbol, start, grid_ceil(end_ms, interval_ms), now_ms, venue)
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
