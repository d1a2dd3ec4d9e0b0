"""Kraken spot REST: ``OHLC`` returns at most the latest 720 candles whatever ``since`` asks (older
history comes from Kraken's downloadable archive), leaves out intervals without trades, and limits
public calls per IP with a counter that decays (about one call per second).

Its OHLC rows carry a vwap and a trade count that ccxt's candles leave out: ccxt keeps the answer
it parsed (``enableLastJsonResponse``) and ``ohlc_rows`` takes them from there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ohlcv_assets.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.venues.ccxt_candles import fetch_ohlcv_rows
from ohlcv_assets.venues.profile import VenueProfile

if TYPE_CHECKING:
    import ccxt


def ohlc_rows(exchange: ccxt.Exchange, market: dict, interval: str, since_ms: int | None, limit: int,
              until_ms: int | None, name: str) -> np.ndarray:
    """ccxt's candles, with vwap and trade count from the same answer (``last_json_response``),
    matched by open time."""
    rows = fetch_ohlcv_rows(exchange, market, interval, since_ms, limit, until_ms, name)
    answer = exchange.last_json_response
    result = answer.get("result") if isinstance(answer, dict) else None
    raw = next((v for k, v in (result or {}).items() if k != "last" and isinstance(v, list)), None)
    if not raw or not len(rows):
        return rows
    try:
        table = np.array([(float(r[0]) * 1000, float(r[5]), float(r[7])) for r in raw], dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        import ccxt  # imported already: only a ccxt answer gets here

        raise ccxt.BadResponse(f"kraken: malformed OHLC rows, e.g. {raw[:1]}") from None
    at = np.searchsorted(table[:, 0], rows[:, 0])
    found = (at < len(table)) & (table[np.minimum(at, len(table) - 1), 0] == rows[:, 0])
    rows[found, len(CANDLE_COLUMNS) + EXTRA_COLUMNS.index("vwap")] = table[at[found], 1]
    rows[found, len(CANDLE_COLUMNS) + EXTRA_COLUMNS.index("trades")] = table[at[found], 2]
    return rows


PROFILE = VenueProfile(
    name="kraken", source="ccxt", page_limit=720, history_candles=720, omits_empty=True, calendar=None,
    intervals=("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w", "2w"),
    weight_limit=15, weight_window_seconds=15.0, candles_weight=1, markets_weight=2, used_weight_header=None,
    symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USD",
    archive_format="kraken_ohlcvt", archive_is_files=True,
    rate_limit_model="a per-IP call counter (max 15) that decays by 1 per second; over it: "
                     "HTTP 200 with {\"error\": [\"EAPI:Rate limit exceeded\"]}",
    ccxt_settings={"enableLastJsonResponse": True}, ccxt_candles=ohlc_rows,
)
