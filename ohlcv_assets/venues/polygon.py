"""US equities from Polygon (now Massive) aggregates: up to 50,000 bars per request with
``next_url`` pagination, bars only inside NYSE sessions and only where trades happened, an API
key on every request. History depth and rate limit depend on the plan (free: 2 years, 5 requests
per minute)."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="polygon", source="polygon", page_limit=50_000, history_candles=None, omits_empty=True, calendar="XNYS",
    intervals=("1m", "5m", "15m", "30m", "1h", "1d"),  # 2h..12h: ET-aligned bars would straddle UTC days; 1d: the
    # vendor's daily bar (official auction prices, all volume), one per session, stored at 00:00 UTC of its trading date
    weight_limit=5, weight_window_seconds=60.0, candles_weight=1, markets_weight=1, used_weight_header=None,
    symbol_pattern=r"[A-Z][A-Z0-9.]{0,9}", symbol_example="AAPL",
    rate_limit_model="per API key: free plan 5 requests per minute, paid plans unlimited (keep under 100/s); 429 beyond",
    api_key_required=True, official_daily=True,
)

NEW_YORK = "America/New_York"


def trading_day_open_times(stamps_ms):
    """Polygon stamps a ``1/day`` bar at midnight New York of its trading date (2023-01-09 ->
    1673240400000: 05:00 UTC in winter, 04:00 in summer); the warehouse keeps every daily candle at
    00:00 UTC of its day, so the bar is stored under its trading date's partition. A stamp that is
    not a New York midnight (the grouped-daily endpoint's 16:00, a changed convention) raises
    ValueError rather than landing on another day."""
    import numpy as np
    import pandas as pd

    local = pd.to_datetime(np.asarray(stamps_ms, dtype=np.int64), unit="ms", utc=True).tz_convert(NEW_YORK)
    days = local.tz_localize(None).normalize()
    off = local.tz_localize(None) != days
    if off.any():
        raise ValueError(f"daily bar stamped {local[off][0].isoformat()}, not at midnight {NEW_YORK}")
    return (days.to_numpy().astype("datetime64[ms]").astype(np.int64)).astype(np.float64)
