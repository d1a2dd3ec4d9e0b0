"""Binance spot REST (and binance.us): klines of 1,000 candles, zero-volume candles where nothing
traded (so a missing candle is downtime), 6,000 request weight per minute per IP."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="binance", source="ccxt", page_limit=1000, history_candles=None, omits_empty=False, calendar=None,
    intervals=("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
    weight_limit=6000, weight_window_seconds=60.0, candles_weight=2, markets_weight=20,
    used_weight_header="X-MBX-USED-WEIGHT-1M", symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USDT",
    archive_format="binance_vision",
    rate_limit_model="rolling 1-minute request weight per IP: 6,000; klines cost 2; 429 with Retry-After, then 418 bans",
)
