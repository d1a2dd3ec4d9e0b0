"""Binance REST, the subset ccxt uses for markets and candles: spot (``/api/v3/exchangeInfo``,
``/api/v3/klines``: 1,000 klines per request) and USDⓈ-M futures (``/fapi/v1/exchangeInfo``,
``/fapi/v1/klines``: perpetual contracts, 1,500 klines per request weighing 1 to 10 by its limit),
each with zero-volume candles where nothing traded and its own rolling request-weight budget per IP
(429 + Retry-After, then 418 bans for clients that keep hammering).

USDⓈ-M also serves a perpetual's other series as the venue documents them: ``markPriceKlines``,
``indexPriceKlines`` (keyed by ``pair``, not ``symbol``) and ``premiumIndexKlines`` (signed values)
in the klines row form with the volume columns ``"0"`` and the sample count where the trade count
is, on the klines weight; ``fundingRate`` (the settlements, ``fundingTime`` a few ms after the hour
as the venue's, ``startTime``/``endTime`` inclusive, 100 by default, 1,000 at most) and
``fundingInfo`` (symbols whose interval or cap was adjusted) on their own budget of 500 requests a
5 minutes per IP, as the venue counts them."""

from __future__ import annotations

import math
import time

import numpy as np
import orjson

from ohlcv_assets.core.intervals import interval_ms
from ohlcv_assets.simulator.market import (
    FUNDING_CAP,
    OI_DECIMALS,
    PREMIUM_DECIMALS,
    PRICE_DECIMALS,
    VOLUME_DECIMALS,
    WIRE_DECIMALS,
    CandleArrays,
    SimSymbol,
)
from ohlcv_assets.simulator.protocol import (
    IN_FLIGHT,
    VIOLATION,
    Answer,
    ApiError,
    Protocol,
    Request,
    RollingWindow,
    apply_candle_fault,
    apply_event_fault,
    concat,
)

KLINES_MAX_LIMIT = 1000
SUPPORTED_INTERVALS = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
AUTH_MESSAGES = {-2015: "Invalid API-key, IP, or permissions for action.", -2014: "API-key format invalid."}
ENDPOINT_WEIGHT = {"klines": 2, "exchangeInfo": 20, "time": 1, "ping": 1}


class WeightBudget(RollingWindow):
    """Binance's rolling request weight: 429 with Retry-After, and a 418 ban for a client that
    sends again before the Retry-After it was given (requests on the wire when the 429 was answered
    excepted: see ``RollingWindow``). Bans grow for repeat offenders: ``ban_seconds``, doubled
    at each new ban up to ``max_ban_seconds`` (on the venue 2 minutes up to 3 days); requests
    inside a ban are answered 418 with the ban's remaining time."""

    def __init__(self, limit: int, window_seconds: float, ban_seconds: float, max_ban_seconds: float | None = None,
                 grace_seconds: float = 0.0):
        super().__init__(limit, window_seconds, "Too much request weight used; please use WebSocket Streams for live updates.",
                         grace_seconds)
        self.ban_seconds = ban_seconds
        self.max_ban_seconds = max(ban_seconds, max_ban_seconds if max_ban_seconds is not None else ban_seconds)
        self.bans = 0
        self.banned_from = self.banned_until = 0.0

    def charge(self, weight: float) -> float:
        with self.lock:
            now = time.monotonic()
            self._expire(now)
            if now < self.banned_until:
                in_hold = IN_FLIGHT if now < self.banned_from + self.grace_seconds else VIOLATION  # sent before the ban
                raise ApiError(418, -1003, "Way too many requests; IP banned.", math.ceil(self.banned_until - now), kind="ban",
                               in_hold=in_hold)
            try:
                self._refuse_inside_hold(now)
            except ApiError as err:
                if err.in_hold != VIOLATION:
                    raise
                self.bans += 1
                ban = min(self.ban_seconds * 2 ** (self.bans - 1), self.max_ban_seconds)
                self.banned_from, self.banned_until = now, now + ban
                raise ApiError(418, -1003, "Way too many requests; IP banned.", math.ceil(ban), kind="ban", in_hold=VIOLATION) from None
            if self.used + weight > self.limit:
                retry_after = max(1, math.ceil(self._wait_for(weight, now) if self.window else 1.0))
                self.hold(retry_after, now)
                raise ApiError(429, -1003, self.message, retry_after, kind="rate_limited")
            self.window.append((now, weight))
            self.used += weight
            return self.used


class Binance(Protocol):
    name = "binance"
    prefix = ""  # every path no other venue claims: the API lives wherever api_url points
    counter = ""  # requests are counted as requests.<counter><endpoint>
    klines_max_limit = KLINES_MAX_LIMIT

    def weight_limit(self, sim) -> int:
        return sim.config.weight_limit

    def endpoint_weight(self, endpoint: str, query: dict[str, str]) -> int | None:
        return ENDPOINT_WEIGHT.get(endpoint)

    def symbol_info(self, s: SimSymbol, now_ms: int) -> dict:
        return _symbol_info(s, now_ms)

    def budget(self, sim):
        config = sim.config
        return WeightBudget(self.weight_limit(sim), config.weight_window_seconds, config.first_ban_seconds,
                            config.longest_ban_seconds, config.hold_grace_seconds)

    def error(self, err: ApiError) -> Answer:
        if err.kind == "auth":  # a key refused: 401 with -2015 (or -2014, a key of the wrong form)
            code = err.code if isinstance(err.code, int) else -2015
            return Answer(401, orjson.dumps({"code": code, "msg": AUTH_MESSAGES.get(code, AUTH_MESSAGES[-2015])}))
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else {}
        return Answer(err.status, orjson.dumps({"code": err.code, "msg": err.msg}), headers)

    def handle(self, sim, request: Request) -> Answer:
        endpoint = request.path.rsplit("/", 1)[-1]
        sim.count(f"requests.{self.counter}{endpoint}")
        weight = self.endpoint_weight(endpoint, request.query)
        if weight is None:
            raise ApiError(404, -1000, f"Unknown endpoint {request.path}")
        used = sim.charge(self, request.client, weight)
        sim.count(f"{self.counter}weight", weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(int(used))}
        start = int(request.query["startTime"]) if request.query.get("startTime", "").lstrip("-").isdigit() else None
        fault = sim.fire_fault(self.name, endpoint, start, client=request.client)
        if endpoint == "klines":
            candles, step = self._klines(sim, request.query)
            body = _klines_body(apply_candle_fault(candles, fault), step)
        elif endpoint == "exchangeInfo":
            body = orjson.dumps({
                "timezone": "UTC", "serverTime": sim.now(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit(sim)}],
                "exchangeFilters": [], "symbols": [self.symbol_info(s, sim.now()) for s in sim.listed(self.name)],
            })
        elif endpoint == "time":
            body = orjson.dumps({"serverTime": sim.now()})
        else:
            body = self.other_body(sim, endpoint, request.query, fault)
        return Answer(200, sim.truncate(body, fault), headers)

    def other_body(self, sim, endpoint: str, query: dict[str, str], fault) -> bytes:
        """The answer of an endpoint the venue adds to the shared ones (exchangeInfo, klines, time)."""
        return b"{}"

    def _klines(self, sim, query: dict[str, str], key: str = "symbol", series: str = "trades") -> tuple[CandleArrays, int]:
        if key not in query and key == "pair":
            raise ApiError(400, -1102, "Mandatory parameter 'pair' was not sent, was empty/null, or malformed.")
        symbol = sim.symbol(self.name, query.get(key, ""))
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
        if not 1 <= limit <= self.klines_max_limit:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        step = interval_ms(interval)
        now = sim.now()
        end = now if end is None else min(end, now)
        return _select(sim, self.name, symbol, step, start, end, limit, now, series), step


PRICE_KLINES = {"markPriceKlines": ("mark", "symbol"), "indexPriceKlines": ("index", "pair"),
                "premiumIndexKlines": ("premium", "symbol")}  # endpoint: (series, the parameter naming the market)
FUNDING_ENDPOINTS = ("fundingRate", "fundingInfo")
FUNDING_LIMIT_DEFAULT, FUNDING_LIMIT_MAX = 100, 1000


class FundingBudget:
    """The budget ``fundingRate`` and ``fundingInfo`` share apart from request weight: 500
    requests per 5 minutes per IP (``venues.binanceusdm.funding_limit`` / ``funding_window_seconds``)."""

    def __init__(self, venue: str):
        self.name = f"{venue}.funding"

    def budget(self, sim) -> RollingWindow:
        limits = sim.config.venue(self.name.split(".")[0])
        return RollingWindow(int(limits.get("funding_limit", 500)), float(limits.get("funding_window_seconds", 300)),
                             "Too many requests; current limit of IP is 500 requests per 5 minutes.",
                             sim.config.hold_grace_seconds)


class BinanceUsdm(Binance):
    """Binance USDⓈ-M futures (``/fapi/v1``): the klines rows of spot, up to 1,500 a request; its
    exchangeInfo lists perpetual contracts; a 2,400 weight/min budget of its own per IP. And a
    perpetual's mark, index and premium index klines and its funding rates (see the module)."""

    name = "binanceusdm"
    prefix = "/fapi"
    counter = "fapi."
    klines_max_limit = 1500

    def weight_limit(self, sim) -> int:
        return int(sim.config.venue(self.name).get("weight_limit", 2400))

    def endpoint_weight(self, endpoint: str, query: dict[str, str]) -> int | None:
        if endpoint != "klines" and endpoint not in PRICE_KLINES:
            return {"exchangeInfo": 1, "time": 1, "ping": 1}.get(endpoint)
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 500
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10

    def handle(self, sim, request: Request) -> Answer:
        endpoint = request.path.rsplit("/", 1)[-1]
        if endpoint not in FUNDING_ENDPOINTS:
            return super().handle(sim, request)
        sim.count(f"requests.{self.counter}{endpoint}")
        sim.charge(FundingBudget(self.name), request.client, 1)
        query = request.query
        start = int(query["startTime"]) if query.get("startTime", "").lstrip("-").isdigit() else None
        fault = sim.fire_fault(self.name, endpoint, start, client=request.client)
        body = self._funding_rates(sim, query, fault) if endpoint == "fundingRate" else self._funding_info(sim)
        return Answer(200, sim.truncate(body, fault))

    def other_body(self, sim, endpoint: str, query: dict[str, str], fault) -> bytes:
        if endpoint not in PRICE_KLINES:
            return b"{}"
        series, key = PRICE_KLINES[endpoint]
        candles, step = self._klines(sim, query, key, series)
        return _price_klines_body(apply_candle_fault(candles, fault), step, series)

    def _funding_rates(self, sim, query: dict[str, str], fault) -> bytes:
        try:
            limit = int(query.get("limit", FUNDING_LIMIT_DEFAULT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= FUNDING_LIMIT_MAX:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        if "symbol" in query:
            symbol = sim.symbol(self.name, query["symbol"])
            if symbol is None:
                raise ApiError(400, -1121, "Invalid symbol.")
            symbols = [symbol]
        else:
            symbols = sim.listed(self.name)
        now = sim.now()
        rows = []
        for symbol in symbols:
            events = funding_window(sim.market.funding_events(symbol, now), start, end, limit)
            events, corrupt = apply_event_fault(events, fault)
            rows += _funding_rows(symbol, events, corrupt)
        rows.sort(key=lambda row: row[0])
        return ("[" + ",".join(row[1] for row in rows) + "]").encode()

    def _funding_info(self, sim) -> bytes:
        now = sim.now()
        published = int(sim.config.venue(self.name).get("funding_cap", FUNDING_CAP))  # a test may publish a tighter cap
        cap = signed_decimals(np.array([published, -published]), PREMIUM_DECIMALS)
        adjusted = []
        for symbol in sim.listed(self.name):
            hours = [h for lo, _, h in sim.market.funding_segments(symbol) if lo <= now]
            if hours and (hours[-1] != 8 or len(hours) > 1):
                adjusted.append({"symbol": symbol.exchange_symbol, "adjustedFundingRateCap": cap[0],
                                 "adjustedFundingRateFloor": cap[1], "fundingIntervalHours": hours[-1], "disclaimer": False})
        return orjson.dumps(adjusted)

    def symbol_info(self, s: SimSymbol, now_ms: int) -> dict:
        return {
            "symbol": s.exchange_symbol, "pair": s.exchange_symbol, "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": s.listed_ms,
            "status": "TRADING" if s.trading(now_ms) else "SETTLING",
            "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
            "baseAsset": s.base, "quoteAsset": s.quote, "marginAsset": s.quote,
            "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
            "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "1000000", "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            ],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK"],
        }


OI_PERIODS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
              "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000}
OI_LIMIT_DEFAULT, OI_LIMIT_MAX = 30, 500
OI_HISTORY_MS = 30 * 86_400_000  # openInterestHist serves the latest 30 days only


class DataBudget:
    """The budget of ``/futures/data`` apart from request weight (weight 0 there): 1,000 requests
    per 5 minutes per IP (the client's ``VenueProfile.open_interest_budget``), set by the venue limits
    ``data_limit`` / ``data_window_seconds``."""

    def __init__(self, venue: str):
        self.name = f"{venue}.data"

    def budget(self, sim) -> RollingWindow:
        limits = sim.config.venue(self.name.split(".")[0])
        return RollingWindow(int(limits.get("data_limit", 1000)), float(limits.get("data_window_seconds", 300)),
                             "Too many requests; current limit of IP is 1000 requests per 5 minutes.",
                             sim.config.hold_grace_seconds)


class BinanceUsdmData(BinanceUsdm):
    """USDⓈ-M's statistics (``/futures/data``): ``openInterestHist``, a perpetual's open interest
    per period (5m to 1d) of the latest 30 days only (an older ``startTime`` is refused), 30 rows by
    default and 500 at most from ``startTime`` (else the last before ``endTime``), numbers as strings."""

    prefix = "/futures/data"
    counter = "fapi.data."

    def handle(self, sim, request: Request) -> Answer:
        endpoint = request.path.rsplit("/", 1)[-1]
        sim.count(f"requests.{self.counter}{endpoint}")
        if endpoint != "openInterestHist":
            raise ApiError(404, -1000, f"Unknown endpoint {request.path}")
        sim.charge(DataBudget(self.name), request.client, 1)
        query = request.query
        try:
            limit = int(query.get("limit", OI_LIMIT_DEFAULT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in a parameter.") from None
        fault = sim.fire_fault(self.name, endpoint, start, client=request.client)
        symbol = sim.symbol(self.name, query.get("symbol", ""))
        if symbol is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        if query.get("period") not in OI_PERIODS:
            raise ApiError(400, -1120, "Invalid period.")
        if not 1 <= limit <= OI_LIMIT_MAX:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        now = sim.now()
        if start is not None and start < now - OI_HISTORY_MS:
            raise ApiError(400, -1130, "parameter 'startTime' is invalid.")
        step = OI_PERIODS[query["period"]]
        hi = (now if end is None else min(end, now)) + 1
        lo = max(start if start is not None else hi - step * limit, now - OI_HISTORY_MS)
        rows = sim.market.open_interest(symbol, step, lo, hi, now, venue="binanceusdm")
        index = np.arange(len(rows["time"]))
        index = index[:limit] if start is not None else index[max(0, len(index) - limit):]
        rows = {k: v[index] for k, v in rows.items()}
        rows, corrupt = apply_event_fault(rows, fault)
        amounts = signed_decimals(rows["amount"], OI_DECIMALS, WIRE_DECIMALS)
        values = signed_decimals(rows["value"], OI_DECIMALS + PRICE_DECIMALS, WIRE_DECIMALS)
        items = [f'{{"symbol":"{symbol.exchange_symbol}","sumOpenInterest":"{a}","sumOpenInterestValue":"{v}",'
                 f'"CMCCirculatingSupply":"0","timestamp":{t}}}' for t, a, v in zip(rows["time"].tolist(), amounts, values)]
        if corrupt and items:
            items[0] = f'{{"symbol":"{symbol.exchange_symbol}","sumOpenInterest":null,"sumOpenInterestValue":null,"timestamp":{int(rows["time"][0])}}}'
        return Answer(200, sim.truncate(("[" + ",".join(items) + "]").encode(), fault))


def funding_window(events: dict[str, np.ndarray], start: int | None, end: int | None, limit: int) -> dict[str, np.ndarray]:
    """``fundingRate``'s selection: events with ``startTime <= fundingTime <= endTime`` (both
    inclusive), the first ``limit`` of them from startTime, else the last ``limit``."""
    t = events["time"]
    keep = np.ones(len(t), dtype=bool)
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t <= end
    index = np.flatnonzero(keep)
    index = index[:limit] if start is not None else index[max(0, len(index) - limit):]
    return {k: v[index] for k, v in events.items()}


def _funding_rows(symbol: SimSymbol, events: dict[str, np.ndarray], corrupt: bool) -> list[tuple[int, str]]:
    rates = signed_decimals(events["rate"], PREMIUM_DECIMALS)
    marks = signed_decimals(events["mark"], PRICE_DECIMALS, WIRE_DECIMALS)
    rows = [(t, f'{{"symbol":"{symbol.exchange_symbol}","fundingTime":{t},"fundingRate":"{r}","markPrice":"{m}"}}')
            for t, r, m in zip(events["time"].tolist(), rates, marks)]
    if corrupt and rows:
        rows[0] = (rows[0][0], f'{{"symbol":"{symbol.exchange_symbol}","fundingTime":{rows[0][0]},"fundingRate":null,"markPrice":null}}')
    return rows


def signed_decimals(values: np.ndarray, decimals: int, shown: int | None = None) -> list[str]:
    """Signed integer units of 10**-decimals as decimal strings with ``shown`` decimals."""
    scale, pad = 10**decimals, "0" * ((shown or decimals) - decimals)
    return [f"{'-' if v < 0 else ''}{abs(v) // scale}.{abs(v) % scale:0{decimals}d}{pad}" for v in values.tolist()]


def price_kline_rows(c: CandleArrays, step: int, series: str, quoted: bool = True) -> list[str]:
    """Price-series kline rows: prices with eight decimals, every volume column ``0`` ("Ignore"),
    the count of samples where the trade count is; JSON arrays of strings (``quoted``, REST) or the
    archive's CSV rows of the same values."""
    decimals = PREMIUM_DECIMALS if series == "premium" else PRICE_DECIMALS
    o, h, low, close = (signed_decimals(getattr(c, name), decimals, WIRE_DECIMALS) for name in ("open", "high", "low", "close"))
    if not quoted:
        return [f"{t},{a},{b},{d},{e},0,{t + step - 1},0,{n},0,0,0"
                for t, a, b, d, e, n in zip(c.open_time.tolist(), o, h, low, close, c.trades.tolist())]
    return [f'[{t},"{a}","{b}","{d}","{e}","0",{t + step - 1},"0",{n},"0","0","0"]'
            for t, a, b, d, e, n in zip(c.open_time.tolist(), o, h, low, close, c.trades.tolist())]


def _price_klines_body(c: CandleArrays, step: int, series: str) -> bytes:
    """Price-series klines as the venue sends them (``price_kline_rows``)."""
    return ("[" + ",".join(price_kline_rows(c, step, series)) + "]").encode()


def _select(sim, venue: str, symbol: SimSymbol, step: int, start: int | None, end: int, limit: int, now: int,
            series: str = "trades") -> CandleArrays:
    """Binance semantics: the first `limit` candles from startTime, else the last before endTime."""
    chunk = step * limit

    def candles(lo, hi):
        return sim.market.candles(symbol, step, lo, hi, now, venue=venue, series=series)

    if start is not None:
        lo = max(start, symbol.listed_ms // step * step)
        parts, found = [], 0
        while lo <= end and found < limit:
            part = candles(lo, min(lo + chunk, end + 1))
            parts.append(part)
            found += len(part)
            lo += chunk
        return concat(parts).take(slice(0, limit))
    hi, parts, found = min(end, symbol.delisted_ms or end) + 1, [], 0  # a delisted symbol's latest: its last candles
    while hi > symbol.listed_ms and found < limit:
        part = candles(hi - chunk, hi)
        parts.insert(0, part)
        found += len(part)
        hi -= chunk
    merged = concat(parts)
    return merged.take(slice(max(0, len(merged) - limit), None))


_PRICE = f'"%d.%0{PRICE_DECIMALS}d{"0" * (WIRE_DECIMALS - PRICE_DECIMALS)}"'
_KLINE = f'[%d,{_PRICE},{_PRICE},{_PRICE},{_PRICE},"%d.%0{WIRE_DECIMALS}d",%d,{_PRICE},%d,"0.00000000","0.00000000","0"]'
CSV_KLINE = _KLINE.replace('"', "")[1:-1]  # the archive's CSV row: the same values, unquoted


def kline_rows(c: CandleArrays, step: int, template: str, time_scale: int = 1) -> list[str]:
    """Binance kline rows: integer ticks and lots printed as the exchange's fixed-point strings,
    one format per row (formatting is most of what the simulator spends per request). The archive
    prints spot times in microseconds from 2025 (``time_scale`` 1000)."""
    price_scale, wire_scale = 10**PRICE_DECIMALS, 10**WIRE_DECIMALS
    volume = c.volume * 10 ** (WIRE_DECIMALS - VOLUME_DECIMALS)
    quote = c.volume * c.close // 10**VOLUME_DECIMALS
    columns = [c.open_time * time_scale]
    for prices in (c.open, c.high, c.low, c.close):
        columns += [prices // price_scale, prices % price_scale]
    columns += [volume // wire_scale, volume % wire_scale, (c.open_time + step) * time_scale - 1, quote // price_scale,
                quote % price_scale, c.trades]
    return [template % row for row in zip(*(col.tolist() for col in columns))]


def _klines_body(c: CandleArrays, step: int) -> bytes:
    return ("[" + ",".join(kline_rows(c, step, _KLINE)) + "]").encode()


def _symbol_info(s: SimSymbol, now_ms: int) -> dict:
    return {
        "symbol": s.exchange_symbol,
        "status": "TRADING" if s.trading(now_ms) else "BREAK",
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
