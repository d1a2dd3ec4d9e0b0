"""Offline venue simulator: one deterministic market served over HTTP in the protocols of several
venues, each close enough to the real API that ccxt's own code (or plain HTTP, for Polygon) runs
against it unmodified:

- Binance spot (``<url>/api/v3``, any path no other venue claims) and USDⓈ-M futures (``<url>/fapi/v1``):
  see ``binance``;
- Kraken (``<url>/kraken``): see ``kraken``;
- Coinbase Exchange (``<url>/coinbase``): see ``coinbase``;
- Polygon / Massive stocks (``<url>/polygon``): see ``polygon``;
- the bulk archives of Binance and Kraken (``<url>/archive``): see ``archives``.

With the failure modes real venues have: listing dates, downtime (per venue or all), minutes
without trades, exchange sessions, a still-forming last candle, each venue's rate limit counted
per client address (per API key for Polygon), and injectable faults (5xx, slow answers, truncated
bodies, rate-limit answers, refused credentials, corrupt or revised candles, 200 answers with no or
too few candles) rendered in the venue's own format.

A 429 (the budget's or an injected one) puts the client on hold for its Retry-After: on Binance a
request inside it is banned (418, ``ban_seconds`` doubling per ban up to ``max_ban_seconds``: by
default 2 and 4,320 weight windows, the venue's 2 minutes and 3 days), elsewhere answered 429
again. Requests arriving within ``hold_grace_seconds`` of the 429 were on the wire when it was
answered and are let off; every other request inside a hold or ban counts in ``/sim/stats`` as
``violations`` (and ``violations_by_client.<address>``).

Run it with ``python -m ohlcv_assets.simulator --port 8765 [--config sim.yaml]``.
``GET /sim/stats`` reports what it served; ``POST /sim/config`` changes faults, downtime and the
budgets at run time (tests and benchmarks use both).
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

import orjson
import yaml

from ohlcv_assets.core.intervals import now_ms, resolve_day, resolve_instant
from ohlcv_assets.simulator.archives import ArchiveFault, Archives, FileCache
from ohlcv_assets.simulator.binance import Binance, BinanceUsdm, BinanceUsdmData
from ohlcv_assets.simulator.coinbase import Coinbase
from ohlcv_assets.simulator.kraken import Kraken
from ohlcv_assets.simulator.market import CRYPTO_VENUES, Downtime, SimSymbol, SimulatedMarket
from ohlcv_assets.simulator.polygon import Polygon
from ohlcv_assets.simulator.protocol import IN_FLIGHT, VIOLATION, Answer, ApiError, Fault, Protocol, Request

PROTOCOLS: tuple[Protocol, ...] = (Archives(), Kraken(), Coinbase(), Polygon(), BinanceUsdm(), BinanceUsdmData(), Binance())  # Binance spot last: it takes every other path
@dataclasses.dataclass
class SimulatorConfig:
    symbols: dict[str, SimSymbol]
    downtime: list[Downtime] = dataclasses.field(default_factory=list)
    faults: list[Fault] = dataclasses.field(default_factory=list)
    weight_limit: int = 6000  # Binance's request weight per window and client
    weight_window_seconds: float = 60.0
    ban_seconds: float | None = None  # the first ban; None: 2 weight windows (Binance: 2 minutes)
    max_ban_seconds: float | None = None  # the longest ban of a repeat offender; None: 4,320 windows (3 days)
    hold_grace_seconds: float = 0.25  # after a 429, how long requests still count as on the wire
    seed: int = 7
    venues: dict[str, dict] = dataclasses.field(default_factory=dict)  # per-venue limits and keys (see each protocol)
    archive_faults: list[ArchiveFault] = dataclasses.field(default_factory=list)

    def venue(self, name: str) -> dict:
        return self.venues.get(name, {})

    @property
    def first_ban_seconds(self) -> float:
        return self.ban_seconds if self.ban_seconds is not None else 2 * self.weight_window_seconds

    @property
    def longest_ban_seconds(self) -> float:
        return self.max_ban_seconds if self.max_ban_seconds is not None else 4320 * self.weight_window_seconds

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> SimulatorConfig:
        symbols = {}
        for entry in raw.get("symbols", []):
            split = entry.get("split")
            sym = SimSymbol(base=entry["base"], quote=entry.get("quote", ""), listed=resolve_day(entry["listed"]),
                            price=float(entry.get("price", 100)), quiet=float(entry.get("quiet", 0.0)), calendar=entry.get("calendar"),
                            extended_hours=bool(entry.get("extended_hours", False)),
                            venues=tuple(entry.get("venues", ("polygon",) if entry.get("calendar") else CRYPTO_VENUES)),
                            split=(resolve_day(split["day"]), int(split["ratio"])) if split else None,
                            delisted=resolve_instant(entry["delisted"]) if entry.get("delisted") else None,
                            funding=tuple((resolve_instant(f["from"]), int(f["hours"])) for f in entry.get("funding", ())),
                            funding_missing=tuple(resolve_instant(t) for t in entry.get("funding_missing", ())))
            symbols[sym.exchange_symbol] = sym
        return cls(
            symbols=symbols,
            downtime=[_downtime(d) for d in raw.get("downtime", [])],
            faults=[Fault(**f) for f in raw.get("faults", [])],
            weight_limit=int(raw.get("weight_limit", 6000)),
            weight_window_seconds=float(raw.get("weight_window_seconds", 60)),
            ban_seconds=float(raw["ban_seconds"]) if raw.get("ban_seconds") is not None else None,
            max_ban_seconds=float(raw["max_ban_seconds"]) if raw.get("max_ban_seconds") is not None else None,
            hold_grace_seconds=float(raw.get("hold_grace_seconds", 0.25)),
            seed=int(raw.get("seed", 7)),
            venues={k: dict(v or {}) for k, v in (raw.get("venues") or {}).items()},
            archive_faults=[ArchiveFault(**f) for f in raw.get("archive_faults", [])],
        )

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> SimulatorConfig:
        text = Path(path).read_text() if path else resources.files("ohlcv_assets").joinpath("demo_simulator.yaml").read_text()
        return cls.from_mapping(yaml.safe_load(text) or {})


def _downtime(raw: dict[str, Any]) -> Downtime:
    return Downtime(start=resolve_instant(raw["start"]), end=resolve_instant(raw["end"]), venue=raw.get("venue"))


class _VenueServer(ThreadingHTTPServer):
    """A client that hangs up before its request is read (its timeout, a killed run) is no fault
    of the venue: nothing is printed for it (socketserver prints a traceback for any error). Its
    listen backlog is a real server's, not socketserver's 5: a client opening 100 connections at
    once (freqtrade's archive download) would otherwise see SYNs dropped and retried seconds later."""

    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class ExchangeSimulator:
    """The simulator's state: market, budgets, faults and counters; start() serves it over HTTP."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.market = SimulatedMarket(config.symbols, config.downtime, config.seed)
        self.budgets: dict[tuple[str, str], Any] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.frozen_now_ms: int | None = None
        self.unlisted: set[str] = set()  # delisted symbols gone from the venues' markets altogether
        self.archive_cache = FileCache()  # archive files as built: static, as on the real archives
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- configuration at run time -------------------------------------------------------
    def reconfigure(self, raw: dict[str, Any]) -> None:
        with self.lock:
            if "faults" in raw:
                self.config.faults = [Fault(**f) for f in raw["faults"]]
            if "archive_faults" in raw:
                self.config.archive_faults = [ArchiveFault(**f) for f in raw["archive_faults"]]
            if "downtime" in raw:
                self.config.downtime = [_downtime(d) for d in raw["downtime"]]
                self.market.downtime = list(self.config.downtime)
                self.archive_cache = FileCache()
            if {"weight_limit", "weight_window_seconds", "venues", "ban_seconds", "max_ban_seconds", "hold_grace_seconds"} & raw.keys():
                self.config.weight_limit = int(raw.get("weight_limit", self.config.weight_limit))
                self.config.weight_window_seconds = float(raw.get("weight_window_seconds", self.config.weight_window_seconds))
                for name in ("ban_seconds", "max_ban_seconds"):
                    if name in raw:
                        setattr(self.config, name, None if raw[name] is None else float(raw[name]))
                self.config.hold_grace_seconds = float(raw.get("hold_grace_seconds", self.config.hold_grace_seconds))
                for name, limits in (raw.get("venues") or {}).items():
                    self.config.venues[name] = {**self.config.venue(name), **limits}
                self.budgets.clear()
            if "frozen_now_ms" in raw:
                self.frozen_now_ms = raw["frozen_now_ms"]
            if "unlisted" in raw:
                self.unlisted = set(raw["unlisted"])
            if raw.get("reset_stats"):
                self.stats.clear()

    def now(self) -> int:
        """The simulator's clock: real time unless a test froze it."""
        return now_ms() if self.frozen_now_ms is None else self.frozen_now_ms

    # --- what protocols share -------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def charge(self, protocol: Protocol, client: str, weight: float) -> float:
        """Charges the protocol's budget of this client (address, or key) or raises its rate-limit
        error; counts the requests that arrive inside the client's hold or ban."""
        with self.lock:
            key = (protocol.name, client)
            if key not in self.budgets:
                self.budgets[key] = protocol.budget(self)
            budget = self.budgets[key]
        try:
            used = budget.charge(weight)
        except ApiError as err:
            if err.in_hold == VIOLATION:
                self.count("violations")
                self.count(f"violations_by_client.{client}")
            elif err.in_hold == IN_FLIGHT:
                self.count("in_flight_at_hold")
            raise
        self.count(f"weight_by_client.{client}", int(weight))  # charged and answered: what each address used
        return used

    def fire_fault(self, venue: str, endpoint: str, start_ms: int | None, client: str | None = None):
        """The fault that fires on this request, if any: status and rate-limit faults raise here
        (a rate-limit answer puts ``client`` on hold, as the venue's own would), slow ones wait;
        those that change the answer are returned to the protocol."""
        with self.lock:
            fault = next((f for f in self.config.faults if f.fires(venue, endpoint, start_ms)), None)
        if fault is None:
            return None
        if fault.kind == "status":
            raise ApiError(fault.status, -1001, "Internal error; unable to process your request. Please try again.", kind="injected")
        if fault.kind == "rate_limit":
            retry_after = max(1, math.ceil(fault.seconds))
            with self.lock:
                budget = self.budgets.get((venue, client))
            if budget is not None and hasattr(budget, "hold"):
                with budget.lock:
                    budget.hold(retry_after)
            raise ApiError(429, -1003, "Too much request weight used (injected).", retry_after, kind="rate_limited")
        if fault.kind == "auth":  # each protocol answers in its venue's own form (``error``)
            raise ApiError(403 if fault.status == 403 else 401, fault.code, "credentials refused (injected)", kind="auth")
        if fault.kind == "slow":
            time.sleep(fault.seconds)
        return fault

    @staticmethod
    def truncate(body: bytes, fault) -> bytes:
        return body[: max(1, len(body) // 2)] if fault is not None and fault.kind == "truncated" else body

    @property
    def archive_faults(self) -> list[ArchiveFault]:
        return self.config.archive_faults

    def listed(self, venue: str) -> list[SimSymbol]:
        return [s for s in self.config.symbols.values() if venue in s.venues and s.exchange_symbol not in self.unlisted]

    def symbol(self, venue: str, exchange_symbol: str) -> SimSymbol | None:
        symbol = self.config.symbols.get(exchange_symbol)
        return symbol if symbol is not None and venue in symbol.venues and exchange_symbol not in self.unlisted else None

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str] | None = None, client: str = "127.0.0.1") -> Answer:
        protocol = next(p for p in PROTOCOLS if path == p.prefix or path.startswith(p.prefix + "/"))
        request = Request(path[len(protocol.prefix):], query, {k.lower(): v for k, v in (headers or {}).items()}, client)
        try:
            return protocol.handle(self, request)
        except ApiError as err:
            if err.kind in ("rate_limited", "ban"):
                self.count(f"{protocol.name}.{err.kind}")
            return protocol.error(err)

    # --- HTTP -----------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves in a background thread; returns the base URL."""
        self.server = _VenueServer((host, port), _handler_for(self))
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


def _handler_for(sim: ExchangeSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: stats say what happened
            pass

        def _send(self, answer: Answer) -> None:
            sim.count(f"status.{answer.status}")
            self.send_response(answer.status)
            headers = {"Content-Type": "application/json;charset=UTF-8", **answer.headers, "Content-Length": str(len(answer.body))}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): as on a real exchange, nothing to do

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/sim/stats":
                with sim.lock:
                    stats = dict(sim.stats)
                self._send(Answer(200, orjson.dumps(stats)))
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self._send(sim.handle(url.path, query, dict(self.headers.items()), self.client_address[0]))

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/sim/config":
                self._send(Answer(404, b'{"code":-1000,"msg":"not found"}'))
                return
            length = int(self.headers.get("Content-Length", 0))
            try:
                sim.reconfigure(orjson.loads(self.rfile.read(length) or b"{}"))
            except (ValueError, TypeError, KeyError) as err:
                self._send(Answer(400, orjson.dumps({"error": str(err)})))
                return
            self._send(Answer(200, b"{}"))

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
