"""Binance spot REST (and binance.us): klines of 1,000 candles, zero-volume candles where nothing
traded (so a missing candle is downtime), 6,000 request weight per minute per IP.

Through ccxt, two things differ from ccxt's defaults. Markets are loaded for spot only
(``fetchMarkets.types``): ccxt's default also asks the futures and options hosts, which this venue's
instruments never need. And candles come from the raw klines endpoint, parsed in bulk
(``klines_rows``): ccxt's per-candle parsing costs more than the request, and drops the quote
volume, trade count and taker-buy volumes every kline carries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ohlcv_assets.candle_frame import widen
from ohlcv_assets.venues.ccxt_candles import candle_rows, fetch_ohlcv_rows
from ohlcv_assets.venues.profile import VenueProfile

if TYPE_CHECKING:
    import ccxt


def klines_rows(exchange: ccxt.Exchange, market: dict, interval: str, since_ms: int | None, limit: int,
                until_ms: int | None, name: str) -> np.ndarray:
    """A page of Binance klines ([t, o, h, l, c, v, close_time, quote_volume, trades,
    taker_buy_volume, taker_buy_quote_volume, ignore]) as candle rows with their extras; markets
    whose klines differ (COIN-M rows count volume in contracts, options) through ccxt's fetch_ohlcv."""
    klines = _klines_endpoint(exchange, market)
    if klines is None:
        return fetch_ohlcv_rows(exchange, market, interval, since_ms, limit, until_ms, name)
    params = {"symbol": market["id"], "interval": exchange.timeframes.get(interval, interval), "limit": limit}
    if since_ms is not None:
        params["startTime"] = since_ms
    if until_ms is not None:
        params["endTime"] = until_ms
    rows = candle_rows(klines(params), name, 11, "kline")
    return widen(rows[:, :6], quote_volume=rows[:, 7], trades=rows[:, 8], taker_buy_volume=rows[:, 9],
                 taker_buy_quote_volume=rows[:, 10])


def _klines_endpoint(exchange: ccxt.Exchange, market: dict) -> Callable | None:
    """Binance's klines endpoint for the market, as ccxt's fetch_ohlcv picks it: spot, or USDⓈ-M
    futures (the same rows). None for others (COIN-M rows count volume in contracts, options
    differ): they go through fetch_ohlcv."""
    if not hasattr(exchange, "publicGetKlines") or market.get("option"):
        return None
    if market.get("spot"):
        return exchange.publicGetKlines
    return exchange.fapiPublicGetKlines if market.get("linear") else None


PROFILE = VenueProfile(
    name="binance", source="ccxt", page_limit=1000, history_candles=None, omits_empty=False, calendar=None,
    intervals=("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
    weight_limit=6000, weight_window_seconds=60.0, candles_weight=2, markets_weight=20,
    used_weight_header="X-MBX-USED-WEIGHT-1M", symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USDT",
    archive_format="binance_vision",
    rate_limit_model="rolling 1-minute request weight per IP: 6,000; klines cost 2; 429 with Retry-After, then 418 bans",
    ccxt_settings={"options": {"fetchMarkets": {"types": ["spot"]}}}, ccxt_candles=klines_rows,
)
