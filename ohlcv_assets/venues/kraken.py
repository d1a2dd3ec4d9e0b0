"""Kraken spot REST: ``OHLC`` returns at most the latest 720 candles whatever ``since`` asks (older
history comes from Kraken's downloadable archive), leaves out intervals without trades, and limits
public calls per IP with a counter that decays (about one call per second)."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="kraken", source="ccxt", page_limit=720, history_candles=720, omits_empty=True, calendar=None,
    intervals=("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w", "2w"),
    weight_limit=15, weight_window_seconds=15.0, candles_weight=1, markets_weight=2, used_weight_header=None,
    symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USD",
    archive_format="kraken_ohlcvt", archive_is_files=True,
    rate_limit_model="a per-IP call counter (max 15) that decays by 1 per second; over it: "
                     "HTTP 200 with {\"error\": [\"EAPI:Rate limit exceeded\"]}",
)
