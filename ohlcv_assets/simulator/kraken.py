"""Kraken spot REST (``/0/public/Assets``, ``AssetPairs``, ``Time``, ``OHLC``), as ccxt's kraken
class calls it: ``OHLC`` returns at most the latest 720 candles whatever ``since`` asks (rows after
``since``, exclusive), rows ``[time_s, open, high, low, close, vwap, volume, count]`` with the last
one still forming, no row for an interval without trades, errors as ``{"error": [...]}`` with HTTP
200, and a per-IP call counter that decays every second."""

from __future__ import annotations

import threading
import time

import orjson

from ohlcv_assets.core.intervals import MINUTE_MS
from ohlcv_assets.simulator.market import PRICE_DECIMALS, VOLUME_DECIMALS, SimSymbol
from ohlcv_assets.simulator.protocol import Answer, ApiError, Protocol, Request, apply_candle_fault, fixed_point

HISTORY_CANDLES = 720
INTERVALS_MINUTES = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
_ASSET_IDS = {"BTC": ("XXBT", "XBT"), "ETH": ("XETH", "ETH"), "USD": ("ZUSD", "USD"), "EUR": ("ZEUR", "EUR")}


def asset_id(code: str) -> tuple[str, str]:
    """(Kraken's asset id, its altname): legacy assets carry X/Z prefixes and BTC is XBT."""
    return _ASSET_IDS.get(code, (code, code))


def pair_id(symbol: SimSymbol) -> str:
    base, quote = asset_id(symbol.base)[0], asset_id(symbol.quote)[0]
    if base != symbol.base and quote != symbol.quote:
        return base + quote
    return asset_id(symbol.base)[1] + asset_id(symbol.quote)[1]


class CallCounter:
    """Kraken's rate limit: each call adds to a per-IP counter that decays by ``decay_per_second``;
    a call that would take it over ``maximum`` is refused (EAPI:Rate limit exceeded), and a client
    refused ``lockout_after`` times within 10 s is locked out for ``lockout_seconds``."""

    def __init__(self, maximum: float, decay_per_second: float, lockout_after: int = 5, lockout_seconds: float = 60.0):
        self.maximum, self.decay = maximum, decay_per_second
        self.lockout_after, self.lockout_seconds = lockout_after, lockout_seconds
        self.value, self.at = 0.0, time.monotonic()
        self.refusals: list[float] = []
        self.locked_until = 0.0
        self.lock = threading.Lock()

    def charge(self, cost: float) -> float:
        with self.lock:
            now = time.monotonic()
            self.value = max(0.0, self.value - (now - self.at) * self.decay)
            self.at = now
            if now < self.locked_until:
                raise ApiError(200, "EGeneral:Temporary lockout", "EGeneral:Temporary lockout", kind="ban")
            if self.value + cost > self.maximum:
                self.refusals = [t for t in self.refusals if t > now - 10] + [now]
                if len(self.refusals) >= self.lockout_after:
                    self.locked_until = now + self.lockout_seconds
                raise ApiError(200, "EAPI:Rate limit exceeded", "EAPI:Rate limit exceeded", kind="rate_limited")
            self.value += cost
            return self.value


class Kraken(Protocol):
    name = "kraken"
    prefix = "/kraken"

    def budget(self, sim):
        limits = sim.config.venue("kraken")
        return CallCounter(float(limits.get("counter_max", 15)), float(limits.get("decay_per_second", 1.0)),
                           int(limits.get("lockout_after", 5)), float(limits.get("lockout_seconds", 60)))

    def error(self, err: ApiError) -> Answer:
        if err.kind == "auth":  # with HTTP 200, as every Kraken error
            return Answer(200, orjson.dumps({"error": [err.code if isinstance(err.code, str) else "EAPI:Invalid key"]}))
        status = 200 if err.kind in ("rate_limited", "ban") or err.status < 500 else err.status
        message = "EAPI:Rate limit exceeded" if err.kind == "rate_limited" else err.code if isinstance(err.code, str) else err.msg
        return Answer(status, orjson.dumps({"error": [message]}))

    def handle(self, sim, request: Request) -> Answer:
        endpoint = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith("/0/public/") or endpoint not in ("Assets", "AssetPairs", "Time", "OHLC", "SystemStatus"):
            raise ApiError(404, "EGeneral:Unknown method", "EGeneral:Unknown method")
        sim.count(f"requests.kraken.{endpoint}")
        sim.charge(self, request.client, 1)
        since = request.query.get("since", "")
        fault = sim.fire_fault(self.name, endpoint, int(since) * 1000 if since.isdigit() else None)
        if endpoint == "OHLC":
            result = self._ohlc(sim, request.query, fault)
        elif endpoint == "AssetPairs":
            result = {pair_id(s): _pair_info(s, sim.now()) for s in sim.listed(self.name)}
        elif endpoint == "Assets":
            codes = sorted({c for s in sim.listed(self.name) for c in (s.base, s.quote)})
            result = {asset_id(c)[0]: {"aclass": "currency", "altname": asset_id(c)[1], "decimals": 10, "display_decimals": 5,
                                       "collateral_value": 1.0, "status": "enabled"} for c in codes}
        elif endpoint == "Time":
            now = sim.now()
            result = {"unixtime": now // 1000, "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now / 1000))}
        else:
            result = {"status": "online", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sim.now() / 1000))}
        return Answer(200, sim.truncate(orjson.dumps({"error": [], "result": result}), fault))

    def _ohlc(self, sim, query: dict[str, str], fault) -> dict:
        wanted = query.get("pair", "")
        symbol = next((s for s in sim.listed(self.name) if wanted in (pair_id(s), asset_id(s.base)[1] + asset_id(s.quote)[1])), None)
        if symbol is None:
            raise ApiError(200, "EQuery:Unknown asset pair", "EQuery:Unknown asset pair")
        try:
            minutes = int(query.get("interval", 1))
            since = int(query["since"]) * 1000 if "since" in query else None
        except ValueError:
            raise ApiError(200, "EGeneral:Invalid arguments", "EGeneral:Invalid arguments") from None
        if minutes not in INTERVALS_MINUTES:
            raise ApiError(200, "EGeneral:Invalid arguments", "EGeneral:Invalid arguments")
        step = minutes * MINUTE_MS
        now = sim.now()
        forming = now // step * step
        first = forming - (HISTORY_CANDLES - 1) * step  # the latest 720 intervals, the forming one included
        if since is not None:
            first = max(first, since + 1)  # rows after since
        c = apply_candle_fault(sim.market.candles(symbol, step, first, forming + step, now, omit_empty=True, venue=self.name), fault)
        vwap = [f"{v / 10**PRICE_DECIMALS:.{PRICE_DECIMALS + 3}f}" for v in c.vwap_ticks().tolist()]
        prices = [fixed_point(p, PRICE_DECIMALS, PRICE_DECIMALS + 3) for p in (c.open, c.high, c.low, c.close)]
        volume = fixed_point(c.volume, VOLUME_DECIMALS, 8)
        rows = [[t // 1000, o, h, lo, cl, vw, v, n] for t, o, h, lo, cl, vw, v, n in
                zip(c.open_time.tolist(), *prices, vwap, volume, c.trades.tolist())]
        return {pair_id(symbol): rows, "last": (forming - step) // 1000}


def _pair_info(s: SimSymbol, now_ms: int) -> dict:
    base, quote = asset_id(s.base), asset_id(s.quote)
    return {
        "altname": base[1] + quote[1], "wsname": f"{base[1]}/{quote[1]}", "aclass_base": "currency", "base": base[0],
        "aclass_quote": "currency", "quote": quote[0], "lot": "unit", "cost_decimals": 5, "pair_decimals": PRICE_DECIMALS,
        "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
        "fees": [[0, 0.26], [50000, 0.24]], "fees_maker": [[0, 0.16], [50000, 0.14]], "fee_volume_currency": "ZUSD",
        "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.01",
        "status": "online" if s.trading(now_ms) else "delisted",
    }
