"""Offline exchange simulator speaking the subset of Binance's spot REST API that ccxt uses for
markets and candles, with the failure modes real exchanges have: listing dates, downtime,
a still-forming last candle, a rolling request-weight budget (429 + Retry-After, then 418 for
clients that keep hammering) and injectable faults (5xx, slow answers, truncated JSON).

Run it with ``python -m ohlcv_assets.simulator --port 8765 [--config sim.yaml]``.
``GET /sim/stats`` reports what it served; ``POST /sim/config`` changes faults, downtime and the
weight budget at run time (tests and benchmarks use both).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import orjson
import yaml

from ohlcv_assets.intervals import interval_ms, now_ms, resolve_day, resolve_instant
from ohlcv_assets.simulator.market import (
    PRICE_DECIMALS,
    VOLUME_DECIMALS,
    WIRE_DECIMALS,
    CandleArrays,
    Downtime,
    SimSymbol,
    SimulatedMarket,
)

KLINES_MAX_LIMIT = 1000
SUPPORTED_INTERVALS = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
ENDPOINT_WEIGHT = {"klines": 2, "exchangeInfo": 20, "time": 1, "ping": 1}


@dataclasses.dataclass
class Fault:
    """Fires on matching requests: the first ``count`` of them, or every ``every``-th one."""

    kind: str  # "status" | "slow" | "truncated" | "rate_limit" | "corrupt" | "revise"
    endpoint: str = "klines"
    count: int | None = None
    every: int | None = None
    status: int = 503
    seconds: float = 1.0
    start_between: tuple[int, int] | None = None  # only klines whose startTime is in [lo, hi)
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in {"status", "slow", "truncated", "rate_limit", "corrupt", "revise"}:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if (self.count is None) == (self.every is None):
            raise ValueError("a fault needs exactly one of count or every")

    def fires(self, query: dict[str, str]) -> bool:
        if self.start_between is not None:
            lo, hi = self.start_between
            if not lo <= int(query.get("startTime", -1)) < hi:
                return False
        self.seen += 1
        hit = self.fired < self.count if self.count is not None else self.seen % self.every == 0
        if hit:
            self.fired += 1
        return hit


@dataclasses.dataclass
class SimulatorConfig:
    symbols: dict[str, SimSymbol]
    downtime: list[Downtime] = dataclasses.field(default_factory=list)
    faults: list[Fault] = dataclasses.field(default_factory=list)
    weight_limit: int = 6000
    weight_window_seconds: float = 60.0
    ban_seconds: float = 120.0
    seed: int = 7

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> SimulatorConfig:
        symbols = {}
        for entry in raw.get("symbols", []):
            sym = SimSymbol(base=entry["base"], quote=entry["quote"], listed=resolve_day(entry["listed"]), price=float(entry.get("price", 100)))
            symbols[sym.exchange_symbol] = sym
        return cls(
            symbols=symbols,
            downtime=[_downtime(d) for d in raw.get("downtime", [])],
            faults=[Fault(**f) for f in raw.get("faults", [])],
            weight_limit=int(raw.get("weight_limit", 6000)),
            weight_window_seconds=float(raw.get("weight_window_seconds", 60)),
            ban_seconds=float(raw.get("ban_seconds", 120)),
            seed=int(raw.get("seed", 7)),
        )

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> SimulatorConfig:
        text = Path(path).read_text() if path else resources.files("ohlcv_assets").joinpath("demo_simulator.yaml").read_text()
        return cls.from_mapping(yaml.safe_load(text) or {})


def _downtime(raw: dict[str, Any]) -> Downtime:
    return Downtime(start=resolve_instant(raw["start"]), end=resolve_instant(raw["end"]))


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, retry_after: int | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after


class WeightBudget:
    """Binance-style rolling request-weight budget (one minute unless configured) with 429 then
    418 escalation."""

    def __init__(self, limit: int, window_seconds: float, ban_seconds: float):
        self.limit = limit
        self.window_seconds = window_seconds
        self.ban_seconds = ban_seconds
        self.window: collections.deque[tuple[float, int]] = collections.deque()
        self.used = 0
        self.retry_after_until = 0.0
        self.banned_until = 0.0
        self.lock = threading.Lock()

    def charge(self, weight: int) -> int:
        """Records a request's weight and returns the minute's usage, or raises 429/418."""
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0][0] <= now - self.window_seconds:
                self.used -= self.window.popleft()[1]
            if now < self.banned_until:
                raise ApiError(418, -1003, "Way too many requests; IP banned.", math.ceil(self.banned_until - now))
            if now < self.retry_after_until:
                self.banned_until = now + self.ban_seconds
                raise ApiError(418, -1003, "Way too many requests; IP banned.", math.ceil(self.ban_seconds))
            if self.used + weight > self.limit:
                freed, wait = self.used, 1.0
                for stamp, w in self.window:
                    freed -= w
                    if freed + weight <= self.limit:
                        wait = stamp + self.window_seconds - now
                        break
                retry_after = max(1, math.ceil(wait))
                self.retry_after_until = now + retry_after
                raise ApiError(429, -1003, "Too much request weight used; please use WebSocket Streams for live updates.", retry_after)
            self.window.append((now, weight))
            self.used += weight
            return self.used


class ExchangeSimulator:
    """The simulator's state: market, budget, faults and counters; serve() runs it over HTTP."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.market = SimulatedMarket(config.symbols, config.downtime, config.seed)
        self.budget = WeightBudget(config.weight_limit, config.weight_window_seconds, config.ban_seconds)
        self.stats: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.frozen_now_ms: int | None = None
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- configuration at run time -------------------------------------------------------
    def reconfigure(self, raw: dict[str, Any]) -> None:
        with self.lock:
            if "faults" in raw:
                self.config.faults = [Fault(**f) for f in raw["faults"]]
            if "downtime" in raw:
                self.config.downtime = [_downtime(d) for d in raw["downtime"]]
                self.market.downtime = list(self.config.downtime)
            if "weight_limit" in raw or "weight_window_seconds" in raw:
                self.config.weight_limit = int(raw.get("weight_limit", self.config.weight_limit))
                self.config.weight_window_seconds = float(raw.get("weight_window_seconds", self.config.weight_window_seconds))
                self.budget = WeightBudget(self.config.weight_limit, self.config.weight_window_seconds, self.config.ban_seconds)
            if "frozen_now_ms" in raw:
                self.frozen_now_ms = raw["frozen_now_ms"]
            if raw.get("reset_stats"):
                self.stats.clear()

    def now(self) -> int:
        """The simulator's clock: real time unless a test froze it."""
        return now_ms() if self.frozen_now_ms is None else self.frozen_now_ms

    def _fault_for(self, endpoint: str, query: dict[str, str]) -> Fault | None:
        with self.lock:
            for fault in self.config.faults:
                if fault.endpoint in (endpoint, "*") and fault.fires(query):
                    return fault
        return None

    # --- endpoints ------------------------------------------------------------------------
    def handle(self, path: str, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        endpoint = path.rsplit("/", 1)[-1]
        self.stats[f"requests.{endpoint}"] += 1
        if endpoint not in ENDPOINT_WEIGHT:
            raise ApiError(404, -1000, f"Unknown endpoint {path}")
        used = self.budget.charge(ENDPOINT_WEIGHT[endpoint])
        self.stats["weight"] += ENDPOINT_WEIGHT[endpoint]
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        fault = self._fault_for(endpoint, query)
        if fault and fault.kind == "status":
            raise ApiError(fault.status, -1001, "Internal error; unable to process your request. Please try again.")
        if fault and fault.kind == "rate_limit":
            raise ApiError(429, -1003, "Too much request weight used (injected).", 1)
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)
        answer = getattr(self, f"_{endpoint}")(query)
        if endpoint == "klines":
            candles, step = answer
            volume = candles.volume * 10 ** (WIRE_DECIMALS - VOLUME_DECIMALS)
            if fault and fault.kind == "corrupt" and len(candles.open_time):
                high = candles.high.copy()
                high[0] = 1  # one tick: high below low, a broken candle
                candles = dataclasses.replace(candles, high=high)
            if fault and fault.kind == "revise":
                volume = volume * 99 // 100  # volumes before late trades arrived: the exchange corrects them later
            body = _klines_body(candles, volume, step)
        else:
            body = orjson.dumps(answer)
        if fault and fault.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        return 200, body, headers

    def _ping(self, query: dict[str, str]) -> dict:
        return {}

    def _time(self, query: dict[str, str]) -> dict:
        return {"serverTime": self.now()}

    def _exchangeInfo(self, query: dict[str, str]) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": self.now(),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.config.weight_limit}],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in self.config.symbols.values()],
        }

    def _klines(self, query: dict[str, str]) -> list:
        symbol = self.config.symbols.get(query.get("symbol", ""))
        if symbol is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        interval = query.get("interval", "")
        if interval not in SUPPORTED_INTERVALS:
            raise ApiError(400, -1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", 500))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        step = interval_ms(interval)
        now = self.now()
        end = now if end is None else min(end, now)
        return self._select(symbol, step, start, end, limit, now), step

    def _select(self, symbol: SimSymbol, step: int, start: int | None, end: int, limit: int, now: int) -> CandleArrays:
        """Binance semantics: the first `limit` candles from startTime, else the last before endTime."""
        chunk = step * limit
        if start is not None:
            lo = max(start, symbol.listed_ms // step * step)
            parts, found = [], 0
            while lo <= end and found < limit:
                part = self.market.candles(symbol, step, lo, min(lo + chunk, end + 1), now)
                parts.append(part)
                found += len(part)
                lo += chunk
            merged = _concat(parts)
            return merged.take(slice(0, limit))
        hi, parts, found = end + 1, [], 0
        while hi > symbol.listed_ms and found < limit:
            part = self.market.candles(symbol, step, hi - chunk, hi, now)
            parts.insert(0, part)
            found += len(part)
            hi -= chunk
        merged = _concat(parts)
        return merged.take(slice(max(0, len(merged) - limit), None))

    # --- HTTP -----------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves in a background thread; returns the base URL."""
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _concat(parts: list[CandleArrays]) -> CandleArrays:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return CandleArrays(empty, empty, empty, empty, empty, empty)
    return CandleArrays(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(CandleArrays)))


_PRICE = f'"%d.%0{PRICE_DECIMALS}d{"0" * (WIRE_DECIMALS - PRICE_DECIMALS)}"'
_KLINE = f'[%d,{_PRICE},{_PRICE},{_PRICE},{_PRICE},"%d.%0{WIRE_DECIMALS}d",%d,{_PRICE},100,"0.00000000","0.00000000","0"]'


def _klines_body(c: CandleArrays, volume: np.ndarray, step: int) -> bytes:
    """Binance kline rows as JSON: integer ticks and lots printed as the exchange's fixed-point
    strings, one format per row (formatting is most of what the simulator spends per request).
    ``volume`` is in units of 10**-WIRE_DECIMALS."""
    price_scale, wire_scale = 10**PRICE_DECIMALS, 10**WIRE_DECIMALS
    quote = c.volume * c.close // 10**VOLUME_DECIMALS
    columns = [c.open_time]
    for prices in (c.open, c.high, c.low, c.close):
        columns += [prices // price_scale, prices % price_scale]
    columns += [volume // wire_scale, volume % wire_scale, c.open_time + step - 1, quote // price_scale, quote % price_scale]
    return ("[" + ",".join(_KLINE % row for row in zip(*(col.tolist() for col in columns))) + "]").encode()


def _symbol_info(s: SimSymbol) -> dict:
    return {
        "symbol": s.exchange_symbol,
        "status": "TRADING",
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _handler_for(sim: ExchangeSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: stats say what happened
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            sim.stats[f"status.{status}"] += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): as on a real exchange, nothing to do

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/sim/stats":
                self._send(200, orjson.dumps(dict(sim.stats)), {})
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                status, body, headers = sim.handle(url.path, query)
            except ApiError as err:
                headers = {"Retry-After": str(err.retry_after)} if err.retry_after else {}
                status, body = err.status, orjson.dumps({"code": err.code, "msg": err.msg})
            self._send(status, body, headers)

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/sim/config":
                self._send(404, b'{"code":-1000,"msg":"not found"}', {})
                return
            length = int(self.headers.get("Content-Length", 0))
            try:
                sim.reconfigure(orjson.loads(self.rfile.read(length) or b"{}"))
            except (ValueError, TypeError, KeyError) as err:
                self._send(400, orjson.dumps({"error": str(err)}), {})
                return
            self._send(200, b"{}", {})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--config", help="simulator YAML (default: the bundled demo market)")
    args = parser.parse_args(argv)
    sim = ExchangeSimulator(SimulatorConfig.from_yaml(args.config))
    url = sim.start(args.host, args.port)
    print(f"exchange simulator listening on {url}", flush=True)
    try:
        sim.thread.join()
    except KeyboardInterrupt:
        sim.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
