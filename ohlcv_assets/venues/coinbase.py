"""Coinbase Exchange public REST (ccxt ``coinbaseexchange``): at most 300 candles per request (a
wider range is a 400), rows newest first, intervals without trades left out, 10 public requests
per second per IP (429 beyond)."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="coinbaseexchange", source="ccxt", page_limit=300, history_candles=None, omits_empty=True, calendar=None,
    intervals=("1m", "5m", "15m", "1h", "6h", "1d"),
    weight_limit=10, weight_window_seconds=1.0, candles_weight=1, markets_weight=2, used_weight_header=None,
    symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USD",
    rate_limit_model="10 public requests per second per IP (bursts to 15); 429 beyond",
    finds_listing=False,  # a request is a fixed window (start, start + 300 candles): no way to ask for the first candle
    listing_search_from="2015-01-01",  # so the listing is searched: 300-day pages of 1d candles from the venue's launch
)
