"""Binance USDⓈ-M futures REST (``/fapi/v1``): perpetual contracts (``BTC/USDT:USDT``), the klines
rows of spot, zero-volume candles where nothing traded (a missing candle is downtime), 2,400
request weight per minute per IP; a page of 1,000 klines weighs 5 (1,500 would weigh 10). Its
public archive is the ``futures/um`` tree of Binance's public data. Its klines are read as spot's
(``binance.klines_rows``: bulk-parsed, with quote volume and trade count); ccxt's ``binanceusdm``
loads only these markets by itself.

A perpetual's other series (``venues.series``): mark, index (keyed by the contract's ``pair``) and
premium index klines (``markPriceKlines``, ``indexPriceKlines``, ``premiumIndexKlines``: kline rows
whose volume columns are "Ignore" (0), the premium signed; the klines weight by limit; every kline
interval but 1s) and funding settlements (``fundingRate``: 1,000 a page, ``fundingTime`` a few ms
after the settlement's hour; 500 requests per 5 minutes per IP shared with ``fundingInfo``, not
request weight; the interval 8, 4 or 1 h per symbol, changing over its life) and open interest
(``/futures/data/openInterestHist``: the latest 30 days only, 500 a page, 1,000 requests per 5
minutes per IP; the archive's daily ``metrics`` files hold the history at 5 minutes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ohlcv_assets.candle_frame import widen
from ohlcv_assets.venues.binance import klines_rows
from ohlcv_assets.venues.ccxt_candles import OI_PAGE, candle_rows, funding_rows, open_interest_rows
from ohlcv_assets.venues.profile import VenueProfile

if TYPE_CHECKING:
    import ccxt

FUNDING_PAGE = 1000  # fundingRate's largest limit


def funding_rate_rows(exchange: ccxt.Exchange, market: dict, since_ms: int, until_ms: int, name: str) -> tuple[np.ndarray, bool]:
    """A page of ``fundingRate`` (both ends inclusive, the first 1,000 from ``startTime``) parsed
    raw: ccxt's parse drops the settlement's mark price. An empty markPrice is NaN."""
    raw = exchange.fapiPublicGetFundingRate({"symbol": market["id"], "startTime": since_ms, "endTime": until_ms,
                                             "limit": FUNDING_PAGE})
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        funding_rows([None], name)  # raises the BadResponse every malformed answer is
    rows = funding_rows([(r.get("fundingTime"), r.get("fundingRate"), r.get("markPrice")) for r in raw], name)
    return rows, len(rows) == FUNDING_PAGE


def open_interest_hist_rows(exchange: ccxt.Exchange, market: dict, period: str, since_ms: int, until_ms: int,
                            name: str) -> tuple[np.ndarray, bool]:
    """A page of ``/futures/data/openInterestHist`` (the first 500 from ``startTime``; a window of
    at most 500 periods, so that the first and the last 500 are the same rows), parsed raw."""
    step = OI_PERIOD_MS[period]
    until = min(until_ms, since_ms + OI_PAGE * step - 1)
    raw = exchange.fapiDataGetOpenInterestHist({"symbol": market["id"], "period": period, "startTime": since_ms,
                                                "endTime": until, "limit": OI_PAGE})
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        open_interest_rows([None], name)  # raises the BadResponse every malformed answer is
    rows = open_interest_rows([(r.get("timestamp"), r.get("sumOpenInterest"), r.get("sumOpenInterestValue")) for r in raw], name)
    return rows, until < until_ms  # more windows follow


OI_PERIOD_MS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
                "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000}


def funding_published(exchange: ccxt.Exchange, market: dict) -> tuple[int | None, float | None, float | None]:
    """The symbol's funding interval now and its rate cap and floor, from ``fundingInfo`` (it lists
    only symbols whose interval or cap was adjusted; the others settle every 8 h, their cap not
    published there: None)."""
    for row in exchange.fapiPublicGetFundingInfo() or []:
        if isinstance(row, dict) and row.get("symbol") == market["id"]:
            cap, floor = row.get("adjustedFundingRateCap"), row.get("adjustedFundingRateFloor")
            return (int(row["fundingIntervalHours"]), float(cap) if cap is not None else None,
                    float(floor) if floor is not None else None)
    return 8, None, None


PRICE_KLINES = {"mark": "fapiPublicGetMarkPriceKlines", "index": "fapiPublicGetIndexPriceKlines",
                "premium": "fapiPublicGetPremiumIndexKlines"}  # ccxt's implicit method of each endpoint


def price_klines_rows(exchange: ccxt.Exchange, market: dict, series: str, interval: str, since_ms: int | None, limit: int,
                      until_ms: int | None, name: str) -> np.ndarray:
    """A page of mark, index or premium index klines from their endpoints, parsed in bulk as the
    klines are: index klines are asked by the contract's ``pair`` (exchangeInfo's, else the
    symbol before a delivery suffix), the others by symbol; the volume columns ("Ignore") stored
    as 0 and none, the count of price samples (column 8) where the trade count is."""
    params = {"interval": exchange.timeframes.get(interval, interval), "limit": limit}
    if series == "index":
        params["pair"] = (market.get("info") or {}).get("pair") or market["id"].split("_")[0]
    else:
        params["symbol"] = market["id"]
    if since_ms is not None:
        params["startTime"] = since_ms
    if until_ms is not None:
        params["endTime"] = until_ms
    rows = candle_rows(getattr(exchange, PRICE_KLINES[series])(params), name, 9, f"{series} kline")
    core = rows[:, :6].copy()
    core[:, 5] = 0.0
    return widen(core, trades=rows[:, 8])

PROFILE = VenueProfile(
    name="binanceusdm", source="ccxt", page_limit=1000, history_candles=None, omits_empty=False, calendar=None,
    intervals=("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
    weight_limit=2400, weight_window_seconds=60.0, candles_weight=5, markets_weight=1,
    used_weight_header="X-MBX-USED-WEIGHT-1M", symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+", symbol_example="BTC/USDT:USDT",
    archive_format="binance_vision", archive_market="futures/um", api_url_keys=("fapiPublic",),
    # futures/um/*/{klines,markPriceKlines,indexPriceKlines,premiumIndexKlines}, .../monthly/fundingRate, .../daily/metrics
    archive_series=("trades", "mark", "index", "premium", "funding", "open_interest"),
    rate_limit_model="rolling 1-minute request weight per IP: 2,400; klines cost 1-10 by limit (1,000: 5); "
                     "429 with Retry-After, then 418 bans",
    ccxt_candles=klines_rows,
    series=("mark", "index", "premium", "funding", "open_interest"), ccxt_series_candles=price_klines_rows, ccxt_funding=funding_rate_rows,
    funding_published=funding_published,
    ccxt_open_interest=open_interest_hist_rows, open_interest_history_days=30,  # openInterestHist: the latest 30 days
    open_interest_budget=(1000, 300.0),  # /futures/data: 1,000 requests per 5 minutes per IP, not request weight
    api_url_derived={"fapiData": "/futures/data"},
    series_intervals=("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
)
