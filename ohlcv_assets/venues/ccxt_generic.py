"""Any other exchange ccxt knows, with no venue-specific knowledge: ccxt's fetch_ohlcv, pages of
1,000 asked (the exchange may return fewer), and Binance-like budget defaults to override."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="ccxt", source="ccxt", page_limit=1000, history_candles=None, omits_empty=False, calendar=None, intervals=None,
    weight_limit=6000, weight_window_seconds=60.0, candles_weight=2, markets_weight=20, used_weight_header=None,
    symbol_pattern=r"[A-Za-z0-9.\-_]+/[A-Za-z0-9.\-_]+(:[A-Za-z0-9.\-_]+)?", symbol_example="BTC/USDT",
    rate_limit_model="unknown: set weight_limit and weight_window_seconds from the exchange's documentation",
    series=None,
)
