"""US equities from Polygon (now Massive) aggregates: up to 50,000 bars per request with
``next_url`` pagination, bars only inside NYSE sessions and only where trades happened, an API
key on every request. History depth and rate limit depend on the plan (free: 2 years, 5 requests
per minute)."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="polygon", source="polygon", page_limit=50_000, history_candles=None, omits_empty=True, calendar="XNYS",
    intervals=("1m", "5m", "15m", "30m", "1h"),  # ET-aligned bars from 1h up would straddle UTC days
    weight_limit=5, weight_window_seconds=60.0, candles_weight=1, markets_weight=1, used_weight_header=None,
    symbol_pattern=r"[A-Z][A-Z0-9.]{0,9}", symbol_example="AAPL",
    rate_limit_model="per API key: free plan 5 requests per minute, paid plans unlimited (keep under 100/s); 429 beyond",
    api_key_required=True,
)
