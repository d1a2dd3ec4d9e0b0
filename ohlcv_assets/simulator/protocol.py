"""What every simulated venue protocol shares: errors, request budgets and the candle faults.

A protocol module (``binance``, ``kraken``, ``coinbase``, ``polygon``) answers the paths under its
prefix in that venue's own format, from the one deterministic market; the server routes to it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ohlcv_assets.simulator.market import CandleArrays

if TYPE_CHECKING:
    from ohlcv_assets.simulator.server import ExchangeSimulator, Fault


class ApiError(Exception):
    """An error answer; the protocol that raised it renders the body in its venue's format."""

    def __init__(self, status: int, code: int | str, msg: str, retry_after: int | None = None, kind: str = "error",
                 in_hold: str | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after, self.kind = status, code, msg, retry_after, kind
        self.in_hold = in_hold  # a request inside a client's Retry-After or ban: IN_FLIGHT or VIOLATION


IN_FLIGHT, VIOLATION = "in_flight", "violation"


@dataclasses.dataclass
class Request:
    path: str  # below the protocol's prefix
    query: dict[str, str]
    headers: dict[str, str]
    client: str  # the client's address: venues count requests per IP


@dataclasses.dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class Protocol:
    """One venue's REST API. ``handle`` answers a request or raises ApiError."""

    name: str
    prefix: str

    def handle(self, sim: ExchangeSimulator, request: Request) -> Answer:
        raise NotImplementedError

    def error(self, err: ApiError) -> Answer:
        raise NotImplementedError

    def budget(self, sim: ExchangeSimulator) -> Any:
        raise NotImplementedError


class RollingWindow:
    """A rolling window of request weight per client, answering 429 beyond its limit (Coinbase,
    Polygon; Binance adds its 418 ban on top).

    A 429 (the window's own or an injected one) puts the client on hold for its Retry-After. A
    request arriving inside the hold is a violation, unless it arrives within ``grace_seconds`` of
    the 429: then it was on the wire when the 429 was answered (another connection of the client)."""

    def __init__(self, limit: float, window_seconds: float, message: str, grace_seconds: float = 0.0):
        self.limit, self.window_seconds, self.message = limit, window_seconds, message
        self.grace_seconds = grace_seconds
        self.window: collections.deque[tuple[float, float]] = collections.deque()
        self.used = 0.0
        self.hold_from = self.hold_until = 0.0
        self.lock = threading.Lock()

    def hold(self, retry_after: float, now: float | None = None) -> None:
        """The client was answered 429 with ``retry_after``: it must not send before then."""
        now = time.monotonic() if now is None else now
        if now >= self.hold_until:
            self.hold_from = now
        self.hold_until = max(self.hold_until, now + retry_after)

    def _refuse_inside_hold(self, now: float) -> None:
        """Raises if ``now`` is inside the client's hold: 429 again (in flight, or a violation)."""
        if now < self.hold_until:
            in_hold = IN_FLIGHT if now < self.hold_from + self.grace_seconds else VIOLATION
            raise ApiError(429, 429, self.message, max(1, math.ceil(self.hold_until - now)), kind="rate_limited", in_hold=in_hold)

    def _expire(self, now: float) -> None:
        while self.window and self.window[0][0] <= now - self.window_seconds:
            self.used -= self.window.popleft()[1]

    def _wait_for(self, weight: float, now: float) -> float:
        freed, wait = self.used, self.window_seconds
        for stamp, w in self.window:
            freed -= w
            if freed + weight <= self.limit:
                return stamp + self.window_seconds - now
        return wait

    def charge(self, weight: float) -> float:
        with self.lock:
            now = time.monotonic()
            self._expire(now)
            self._refuse_inside_hold(now)
            if self.used + weight > self.limit:
                retry_after = max(1, math.ceil(self._wait_for(weight, now)))
                self.hold(retry_after, now)
                raise ApiError(429, 429, self.message, retry_after, kind="rate_limited")
            self.window.append((now, weight))
            self.used += weight
            return self.used


def apply_candle_fault(candles: CandleArrays, fault: Fault | None) -> CandleArrays:
    """``corrupt``: the first candle's high below its low; ``revise``: volumes 1 % short (before
    late trades arrived: the venue corrects them later); ``empty``: no candle at all, ``short``:
    only the first tenth of them (a venue answering 200 with less than it has, as a lagging
    replica or a cache does), each rendered by the protocol in its venue's own format."""
    if fault is None or len(candles) == 0:
        return candles
    if fault.kind == "empty":
        return candles.take(slice(0, 0))
    if fault.kind == "short":
        return candles.take(slice(0, max(1, len(candles) // 10)))
    if fault.kind == "corrupt":
        high = candles.high.copy()
        high[0] = 1
        return dataclasses.replace(candles, high=high)
    if fault.kind == "revise":
        return dataclasses.replace(candles, volume=candles.volume * 99 // 100)
    return candles


def concat(parts: list[CandleArrays]) -> CandleArrays:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return CandleArrays(*(empty for _ in dataclasses.fields(CandleArrays)))
    return CandleArrays(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(CandleArrays)))


def fixed_point(values: np.ndarray, decimals: int, shown: int) -> list[str]:
    """Integer units of 10**-decimals as decimal strings with ``shown`` decimals (shown >= decimals)."""
    scale = 10**decimals
    pad = "0" * (shown - decimals)
    if decimals == 0:
        return [f"{v}.{pad}" if pad else str(v) for v in values.tolist()]
    return [f"{q}.{r:0{decimals}d}{pad}" for q, r in zip((values // scale).tolist(), (values % scale).tolist())]
