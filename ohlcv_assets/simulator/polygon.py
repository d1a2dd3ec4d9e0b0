"""Polygon (now Massive) stocks REST: aggregates ``/v2/aggs/ticker/{T}/range/{m}/{span}/{from}/{to}``
(``limit`` up to 50,000, ``next_url`` for the rest, bars only where trades happened inside NYSE
sessions, ``adjusted`` for splits), ``/v3/reference/tickers/{T}`` and the ticker list ``/v3/reference/tickers``; an API key on every request
(``apiKey`` or ``Authorization: Bearer``), requests counted per key per minute (429 beyond)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from urllib.parse import urlencode

import numpy as np
import orjson
import pandas as pd

from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, HOUR_MS
from ohlcv_assets.core.intervals import day_bounds_ms, utc_day
from ohlcv_assets.core.sessions import sessions_for
from ohlcv_assets.simulator.market import PRICE_DECIMALS, VOLUME_DECIMALS, CandleArrays
from ohlcv_assets.simulator.market import _uniform
from ohlcv_assets.simulator.protocol import Answer, ApiError, Protocol, Request, RollingWindow, apply_candle_fault

MAX_LIMIT = 50_000
TIMESPAN_MS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
NEW_YORK = "America/New_York"


def _bound_ms(value: str, end: bool) -> int:
    """A from/to path part: epoch ms, or a date (``to`` covers the whole day)."""
    if value.isdigit():
        return int(value)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "ERROR", f"Could not parse the time parameter: {value!r}") from None
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    return start + DAY_MS - 1 if end else start


def _day_bound_ms(value: str) -> int:
    """A from/to path part of a ``day`` request snapped to its day (Polygon snaps ``from`` to the
    start of its resolution and ``to`` to the end): the midnight New York stamp of that date (a date
    string) or of the New York date the instant falls in (epoch ms)."""
    if value.isdigit():
        day = pd.Timestamp(int(value), unit="ms", tz="UTC").tz_convert(NEW_YORK).date()
    else:
        _bound_ms(value, False)  # the same error for a bad value
        day = dt.date.fromisoformat(value)
    return int(pd.Timestamp(day).tz_localize(NEW_YORK).value // 1_000_000)


class Polygon(Protocol):
    name = "polygon"
    prefix = "/polygon"

    budget_message = "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue."

    def budget(self, sim):
        limits = sim.config.venue("polygon")
        return RollingWindow(float(limits.get("requests_per_minute", 5)), 60.0, self.budget_message, sim.config.hold_grace_seconds)

    def error(self, err: ApiError) -> Answer:
        if err.kind == "auth" and err.status == 403:  # a key whose plan does not cover the data
            return Answer(403, orjson.dumps({"status": "NOT_AUTHORIZED", "request_id": uuid.uuid4().hex,
                                             "message": "You are not entitled to this data. Please upgrade your plan."}))
        if err.kind == "auth":
            return Answer(401, orjson.dumps({"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "Unknown API Key"}))
        status = "NOT_FOUND" if err.status == 404 else "ERROR"
        message = self.budget_message if err.kind == "rate_limited" else err.msg
        return Answer(err.status, orjson.dumps({"status": status, "request_id": uuid.uuid4().hex, "error": message}))

    def handle(self, sim, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        endpoint = "aggs" if parts[:2] == ["v2", "aggs"] else "tickers" if parts[:3] == ["v3", "reference", "tickers"] else "?"
        sim.count(f"requests.polygon.{endpoint}")
        key = request.query.get("apiKey") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not key:
            raise ApiError(401, "ERROR", "API Key was not provided")
        if key != sim.config.venue("polygon").get("api_key"):
            raise ApiError(401, "ERROR", "Unknown API Key")
        sim.charge(self, key, 1)  # Polygon counts per key, wherever the requests come from
        if endpoint == "aggs" and len(parts) == 9:
            ticker, mult, span, lo, hi = parts[3], parts[5], parts[6], parts[7], parts[8]
            fault = sim.fire_fault(self.name, endpoint, _bound_ms(lo, False), client=key)
            bounds = (_day_bound_ms(lo), _day_bound_ms(hi)) if span == "day" else (_bound_ms(lo, False), _bound_ms(hi, True))
            body = self._aggs(sim, ticker, mult, span, *bounds, request.query, fault)
        elif endpoint == "tickers" and len(parts) == 4:
            fault = sim.fire_fault(self.name, endpoint, None, client=key)
            symbol = sim.symbol(self.name, parts[3])
            if symbol is None:
                raise ApiError(404, "NOT_FOUND", "Ticker not found.")
            body = {"request_id": uuid.uuid4().hex, "status": "OK", "results": {
                "ticker": symbol.exchange_symbol, "name": symbol.exchange_symbol, "market": "stocks", "locale": "us",
                "primary_exchange": "XNYS", "type": "CS", "active": symbol.trading(sim.now()),
                "currency_name": "usd", "list_date": symbol.listed.isoformat()}}
            if not symbol.trading(sim.now()):
                body["results"]["delisted_utc"] = symbol.delisted.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif endpoint == "tickers" and len(parts) == 3:  # the list (the health check asks for one)
            fault = sim.fire_fault(self.name, endpoint, None)
            limit = int(request.query.get("limit", 100)) if request.query.get("limit", "").isdigit() else 100
            listed = [{"ticker": s.exchange_symbol, "name": s.exchange_symbol, "market": "stocks", "locale": "us",
                       "primary_exchange": "XNYS", "type": "CS", "active": s.trading(sim.now()), "currency_name": "usd"}
                      for s in sim.listed(self.name)][:limit]
            body = {"request_id": uuid.uuid4().hex, "status": "OK", "count": len(listed), "results": listed}
        else:
            raise ApiError(404, "NOT_FOUND", "Route not found.")
        return Answer(200, sim.truncate(orjson.dumps(body), fault))

    def _aggs(self, sim, ticker: str, mult: str, span: str, lo: int, hi: int, query: dict[str, str], fault) -> dict:
        symbol = sim.symbol(self.name, ticker)
        if span not in TIMESPAN_MS or not mult.isdigit() or int(mult) < 1:
            raise ApiError(400, "ERROR", f"Unsupported range {mult}/{span}")
        step = int(mult) * TIMESPAN_MS[span]
        try:
            limit = min(int(query.get("limit", 5000)), MAX_LIMIT)
        except ValueError:
            raise ApiError(400, "ERROR", "Could not parse limit") from None
        adjusted = query.get("adjusted", "true").lower() != "false"
        out = {"ticker": ticker, "adjusted": adjusted, "request_id": uuid.uuid4().hex}
        if symbol is None:
            return {**out, "queryCount": 0, "resultsCount": 0, "status": "OK", "count": 0}
        now = sim.now()
        if span == "day":
            if int(mult) != 1:
                raise ApiError(400, "ERROR", f"Unsupported range {mult}/{span}")
            c = daily_bars(sim, symbol, lo, min(hi, now), now)
        else:
            c = sim.market.candles(symbol, step, lo, min(hi, now) + 1, now, omit_empty=True, venue=self.name)
        if query.get("sort", "asc") == "desc":
            c = c.take(slice(None, None, -1))
        page, rest = c.take(slice(0, limit)), c.take(slice(limit, None))
        page = apply_candle_fault(_unadjusted(symbol, page) if not adjusted else page, fault)
        vwap = page.vwap_ticks() / 10**PRICE_DECIMALS
        results = [{"v": v, "vw": round(w, 4), "o": o, "c": cl, "h": h, "l": low, "t": t, "n": n} for t, o, h, low, cl, v, w, n in zip(
            page.open_time.tolist(), *((p / 10**PRICE_DECIMALS).tolist() for p in (page.open, page.high, page.low, page.close)),
            (page.volume / 10**VOLUME_DECIMALS).tolist(), vwap.tolist(), page.trades.tolist())]
        out.update({"queryCount": len(results), "resultsCount": len(results), "status": "OK", "results": results, "count": len(results)})
        if len(rest):
            params = {k: v for k, v in query.items() if k != "apiKey"}
            cursor = int(rest.open_time[0])
            out["next_url"] = f"{sim.url}{self.prefix}/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{cursor}/{hi}?{urlencode(params)}"
        return out


def daily_bars(sim, symbol, lo: int, hi: int, now: int) -> CandleArrays:
    """Polygon's ``1/day`` bars stamped in [lo, hi]: one per trading date with a trade, stamped at
    midnight New York of that date, with the vendor's official figures, which no roll-up of its
    minute bars gives: the open and close of the opening and closing auctions (a little off the
    first and last regular-session minute), high and low over the whole day (extended hours
    included) and the auction prices, and the volume and trade count with the off-exchange and
    late prints the minute bars lack (a few percent more)."""
    first, last = utc_day(lo) - dt.timedelta(days=1), utc_day(max(lo, hi)) + dt.timedelta(days=1)
    minutes = sim.market.candles(symbol, MINUTE_MS, day_bounds_ms(first)[0], day_bounds_ms(last)[1], now,
                                 omit_empty=True, venue="polygon")
    if len(minutes) == 0:
        return minutes
    local = pd.to_datetime(minutes.open_time, unit="ms", utc=True).tz_convert(NEW_YORK)
    dates = local.tz_localize(None).normalize()
    stamps = dates.tz_localize(NEW_YORK).as_unit("ms").asi8.astype(np.int64)
    keep = (stamps >= lo) & (stamps <= hi)
    minutes, stamps = minutes.take(keep), stamps[keep]
    if len(minutes) == 0:
        return minutes
    regular = np.isin(minutes.open_time, sessions_for(symbol.calendar or "XNYS").expected(
        int(minutes.open_time[0]), int(minutes.open_time[-1]) + MINUTE_MS, MINUTE_MS), assume_unique=True)
    starts = np.flatnonzero(np.r_[True, stamps[1:] != stamps[:-1]])
    ends = np.r_[starts[1:], len(stamps)]
    salt = sim.market._salt(symbol)
    t = stamps[starts]
    opens, closes = np.empty(len(t), np.int64), np.empty(len(t), np.int64)
    for n, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        inside = np.flatnonzero(regular[a:b]) + a
        opens[n] = minutes.open[inside[0] if len(inside) else a]
        closes[n] = minutes.close[inside[-1] if len(inside) else b - 1]
    opens = np.maximum(1, np.round(opens * (1 + 0.002 * (_uniform(sim.market.seed, salt + 11, t) - 0.5)))).astype(np.int64)
    closes = np.maximum(1, np.round(closes * (1 + 0.002 * (_uniform(sim.market.seed, salt + 12, t) - 0.5)))).astype(np.int64)
    highs = np.maximum(np.maximum.reduceat(minutes.high, starts), np.maximum(opens, closes))
    lows = np.minimum(np.minimum.reduceat(minutes.low, starts), np.minimum(opens, closes))
    extra = 1.02 + 0.06 * _uniform(sim.market.seed, salt + 13, t)  # off-exchange and late prints
    volume = np.round(np.add.reduceat(minutes.volume, starts) * extra).astype(np.int64)
    trades = np.round(np.add.reduceat(minutes.trades, starts) * extra).astype(np.int64)
    return CandleArrays(t, opens, highs, lows, closes, volume, trades)


def _unadjusted(symbol, c: CandleArrays) -> CandleArrays:
    """Prices as traded before a split (``ratio`` times the adjusted ones), volumes as traded."""
    if symbol.split is None:
        return c
    day, ratio = symbol.split
    before = c.open_time < int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    scale = 1 + (ratio - 1) * before
    return dataclasses.replace(c, open=c.open * scale, high=c.high * scale, low=c.low * scale, close=c.close * scale,
                               volume=c.volume // scale)
