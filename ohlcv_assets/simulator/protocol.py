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
import typing
from typing import Any

import numpy as np

from ohlcv_assets.simulator.market import CandleArrays, SimSymbol, SimulatedMarket


FAULT_KINDS = {"status", "slow", "truncated", "rate_limit", "auth", "corrupt", "revise", "empty", "short"}


@dataclasses.dataclass
class Fault:
    """Fires on matching requests: the first ``count`` of them, or every ``every``-th one."""

    kind: str  # "status" | "slow" | "truncated" | "rate_limit" | "auth" | "corrupt" | "revise" | "empty" | "short"
    endpoint: str = "klines"  # the venue's endpoint name (klines, OHLC, candles, aggs) or "*"
    venue: str = "*"  # binance, kraken, coinbase, polygon or "*"
    count: int | None = None
    every: int | None = None
    status: int = 503  # "status": the answer's HTTP status; "auth": 403 for a plan not entitled (Polygon), else a refused key
    code: int | str | None = None  # "auth": the venue's error code, e.g. Binance -2014 (default -2015)
    seconds: float = 1.0  # how long a slow answer takes, or a rate_limit answer's Retry-After
    start_between: tuple[int, int] | None = None  # only requests whose window starts in [lo, hi) (ms)
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if (self.count is None) == (self.every is None):
            raise ValueError("a fault needs exactly one of count or every")

    def fires(self, venue: str, endpoint: str, start_ms: int | None) -> bool:
        if self.venue not in (venue, "*") or self.endpoint not in (endpoint, "*"):
            return False
        if self.start_between is not None:
            lo, hi = self.start_between
            if start_ms is None or not lo <= start_ms < hi:
                return False
        self.seen += 1
        hit = self.fired < self.count if self.count is not None else self.seen % self.every == 0
        if hit:
            self.fired += 1
        return hit


class Simulator(typing.Protocol):
    """What a protocol uses of the simulator that routes to it (``server.ExchangeSimulator``), so
    that the protocols need not import the server that imports them."""

    config: Any
    market: SimulatedMarket
    lock: threading.Lock

    def now(self) -> int: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def charge(self, protocol: Protocol, client: str, weight: float) -> float: ...
    def fire_fault(self, venue: str, endpoint: str, start_ms: int | None, client: str | None = None) -> Any: ...
    def listed(self, venue: str) -> list[SimSymbol]: ...
    def symbol(self, venue: str, exchange_symbol: str) -> SimSymbol | None: ...


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

    def handle(self, sim: Simulator, request: Request) -> Answer:
        raise NotImplementedError

    def error(self, err: ApiError) -> Answer:
        raise NotImplementedError

    def budget(self, sim: Simulator) -> Any:
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
        high[0] = min(1, candles.low[0] - 1)  # below the low also for a series that goes negative (premium index)
        return dataclasses.replace(candles, high=high)
    if fault.kind == "revise":
        return dataclasses.replace(candles, volume=candles.volume * 99 // 100)
    return candles


def apply_event_fault(events: dict[str, np.ndarray], fault: Fault | None) -> tuple[dict[str, np.ndarray], bool]:
    """The candle faults on an event series (funding rates): ``empty`` none, ``short`` the first
    tenth, ``revise`` every ``rate`` changed by a tenth; ``corrupt`` is returned as True (the
    protocol renders its first event with nulls)."""
    n = len(next(iter(events.values()))) if events else 0
    if fault is None or n == 0:
        return events, False
    if fault.kind == "empty":
        return {k: v[:0] for k, v in events.items()}, False
    if fault.kind == "short":
        return {k: v[: max(1, n // 10)] for k, v in events.items()}, False
    if fault.kind == "revise" and "rate" in events:
        return {**events, "rate": events["rate"] + events["rate"] // 10 + 1}, False
    return events, fault.kind == "corrupt"


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
