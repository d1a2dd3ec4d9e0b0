"""Coinbase Exchange public REST (``/products``, ``/currencies``, ``/products/{id}/candles``), as
ccxt's coinbaseexchange class calls it: ``granularity`` in {60, 300, 900, 3600, 21600, 86400}, a
range of more than 300 candles is a 400, rows ``[time_s, low, high, open, close, volume]`` newest
first (the bucket holding ``start`` included), no row for an interval without trades, errors as
``{"message": ...}``, and 10 public requests per second per IP (429 beyond)."""

from __future__ import annotations

import datetime as dt

import orjson

from ohlcv_assets.simulator.market import PRICE_DECIMALS, VOLUME_DECIMALS, SimSymbol
from ohlcv_assets.simulator.protocol import Answer, ApiError, Protocol, Request, RollingWindow, apply_candle_fault

MAX_CANDLES = 300
GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)


def product_id(symbol: SimSymbol) -> str:
    return f"{symbol.base}-{symbol.quote}"


def _instant_ms(value: str) -> int:
    try:
        if value.lstrip("-").isdigit():
            return int(value) * 1000
        return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise ApiError(400, 400, f"Invalid time {value!r}") from None


class Coinbase(Protocol):
    name = "coinbase"
    prefix = "/coinbase"

    def budget(self, sim):
        limits = sim.config.venue("coinbase")
        return RollingWindow(float(limits.get("requests_per_second", 10)), 1.0, "Public rate limit exceeded", sim.config.hold_grace_seconds)

    def error(self, err: ApiError) -> Answer:
        if err.kind == "auth":
            return Answer(401, orjson.dumps({"message": "Unauthorized."}))
        message = "Public rate limit exceeded" if err.kind == "rate_limited" else err.msg
        return Answer(err.status, orjson.dumps({"message": message}))

    def handle(self, sim, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        endpoint = parts[-1] if parts else ""
        sim.count(f"requests.coinbase.{endpoint}")
        sim.charge(self, request.client, 1)
        start = request.query.get("start")
        fault = sim.fire_fault(self.name, endpoint, _instant_ms(start) if start else None, client=request.client)
        if parts == ["products"]:
            body = [_product(s, sim.now()) for s in sim.listed(self.name)]
        elif parts == ["currencies"]:
            codes = sorted({c for s in sim.listed(self.name) for c in (s.base, s.quote)})
            body = [{"id": c, "name": c, "min_size": "0.00000001", "status": "online", "message": "", "max_precision": "0.00000001",
                     "convertible_to": [], "details": {"type": "fiat" if c in ("USD", "EUR") else "crypto"}} for c in codes]
        elif parts == ["time"]:
            now = sim.now()
            body = {"iso": dt.datetime.fromtimestamp(now / 1000, dt.timezone.utc).isoformat(), "epoch": now / 1000}
        elif len(parts) == 3 and parts[0] == "products" and parts[2] == "candles":
            body = self._candles(sim, parts[1], request.query, fault)
        else:
            raise ApiError(404, 404, "NotFound")
        return Answer(200, sim.truncate(orjson.dumps(body), fault))

    def _candles(self, sim, product: str, query: dict[str, str], fault) -> list:
        symbol = next((s for s in sim.listed(self.name) if product_id(s) == product), None)
        if symbol is None:
            raise ApiError(404, 404, "NotFound")
        try:
            granularity = int(query.get("granularity", 60))
        except ValueError:
            raise ApiError(400, 400, "Unsupported granularity") from None
        if granularity not in GRANULARITIES:
            raise ApiError(400, 400, "Unsupported granularity")
        step = granularity * 1000
        now = sim.now()
        if ("start" in query) != ("end" in query):
            raise ApiError(400, 400, "start and end must both be given")
        if "start" in query:
            start, end = _instant_ms(query["start"]), _instant_ms(query["end"])
            if end < start:
                raise ApiError(400, 400, "end must be after start")
            if end // step - start // step + 1 > MAX_CANDLES:
                raise ApiError(400, 400, "granularity too small for the requested time range. "
                                         f"Count of aggregations requested exceeds {MAX_CANDLES}")
        else:
            end = now
            start = now - (MAX_CANDLES - 1) * step
        c = sim.market.candles(symbol, step, start // step * step, min(end, now) + 1, now, omit_empty=True, venue=self.name)
        c = apply_candle_fault(c, fault)
        rows = zip(c.open_time.tolist(), *((v / 10**PRICE_DECIMALS).tolist() for v in (c.low, c.high, c.open, c.close)),
                   (c.volume / 10**VOLUME_DECIMALS).tolist())
        return [[t // 1000, lo, hi, op, cl, v] for t, lo, hi, op, cl, v in reversed(list(rows))]


def _product(s: SimSymbol, now_ms: int) -> dict:
    return {
        "id": product_id(s), "base_currency": s.base, "quote_currency": s.quote, "quote_increment": "0.01",
        "base_increment": "0.00000001", "display_name": f"{s.base}/{s.quote}", "min_market_funds": "1", "margin_enabled": False,
        "post_only": False, "limit_only": False, "cancel_only": False, "status": "online" if s.trading(now_ms) else "delisted", "status_message": "",
        "trading_disabled": False, "fx_stablecoin": False, "max_slippage_percentage": "0.02000000", "auction_mode": False,
    }
