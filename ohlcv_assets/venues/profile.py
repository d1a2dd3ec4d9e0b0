"""The shape of a venue profile (see the package docstring)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ohlcv_assets.venues.ccxt_candles import (
    CcxtCandles,
    CcxtFunding,
    CcxtOpenInterest,
    CcxtSeriesCandles,
    fetch_funding_rows,
    fetch_open_interest_rows,
    fetch_ohlcv_rows,
    fetch_series_ohlcv_rows,
)

if TYPE_CHECKING:
    import ccxt


@dataclasses.dataclass(frozen=True)
class VenueProfile:
    name: str
    source: str  # "ccxt" or "polygon": which CandleSource implementation talks to it
    page_limit: int  # candles per request at most
    history_candles: int | None  # how many of the latest candles the API serves at all; None: from listing
    omits_empty: bool  # True: intervals without trades are left out (a missing candle means no trades)
    calendar: str | None  # exchange-calendars code of the trading sessions; None: trades around the clock
    intervals: tuple[str, ...] | None  # None: what ccxt says the exchange offers
    weight_limit: int  # request weight per window, per IP
    weight_window_seconds: float
    candles_weight: int
    markets_weight: int
    used_weight_header: str | None
    symbol_pattern: str  # a regular expression the universe's symbols must match
    symbol_example: str
    rate_limit_model: str  # for people: how the venue counts
    downtime_min_minutes: int = 60  # an omitting venue's empty run this long or longer is downtime, not quiet trading
    api_key_required: bool = False
    official_daily: bool = False  # its 1d candles hold official figures (auctions, all volume), not a roll-up of its minutes
    finds_listing: bool = True  # candles asked from time 0 start at the symbol's first candle (not so: Coinbase's fixed windows)
    listing_search_from: str | None = None  # else: the first candle is searched for from this day (ISO date), daily pages forward
    archive_format: str | None = None  # the venue's bulk archive layout (``archive.formats.FORMATS``), None: it has none
    archive_is_files: bool = False  # its archive is files the universe lists (Kraken's full and quarterly zips), not one root
    archive_market: str = "spot"  # the archive tree holding this venue's instruments (Binance: spot, futures/um, futures/cm)
    archive_series: tuple[str, ...] = ("trades",)  # the candles series its archive holds (``venues.series``: trades, mark...)
    api_url_keys: tuple[str, ...] = ("public",)  # the ccxt ``urls['api']`` entries a universe's api_url replaces
    # ccxt venues: which ccxt class speaks its API, and what the shared ccxt client (``exchange.ccxt_source``) does
    # differently for it
    ccxt_id: str | None = None  # the ccxt exchange id; None: the venue's name (``ccxt_class``)
    ccxt_settings: Mapping[str, object] = dataclasses.field(default_factory=dict, hash=False)  # ccxt constructor settings
    # (``options`` merged under the universe's own, e.g. Binance: spot markets only)
    ccxt_candles: CcxtCandles = fetch_ohlcv_rows  # how a page of candles is asked for and read (``venues.ccxt_candles``)
    # a perpetual's other series (``venues.series``): which the venue serves; None: what ccxt's ``has`` says (generic ccxt)
    series: tuple[str, ...] | None = ()
    series_intervals: tuple[str, ...] | None = None  # the intervals of its price-series klines; None: ``intervals``
    ccxt_series_candles: CcxtSeriesCandles = fetch_series_ohlcv_rows  # how a page of a price series is read
    ccxt_funding: CcxtFunding = fetch_funding_rows  # how a page of funding settlements is read
    ccxt_open_interest: CcxtOpenInterest = fetch_open_interest_rows  # how a page of open interest is read
    open_interest_history_days: int | None = None  # how far back its REST serves open interest (None: all of it)
    # (requests, window seconds) per IP of its open interest endpoint, a budget apart from request weight (Binance's
    # openInterestHist: 1,000 per 5 minutes); None: an open interest request is one unit of request weight
    open_interest_budget: tuple[int, float] | None = None
    # ccxt ``urls['api']`` keys a universe's api_url also sets, as its origin plus a path of their own
    api_url_derived: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # what the venue publishes of the symbol's funding now: (interval hours, rate cap, rate floor), each None where it
    # does not (the interval is then inferred, the cap not checked); None: it publishes nothing
    funding_published: Callable[[ccxt.Exchange, dict], tuple[int | None, float | None, float | None]] | None = None

    @property
    def ccxt_class(self) -> str | None:
        """The ccxt exchange id a universe entry of this venue defaults to (None: not a ccxt venue)."""
        return (self.ccxt_id or self.name) if self.source == "ccxt" else None

    def check_symbol_form(self, symbol: str) -> str | None:
        """Why ``symbol`` is not in this venue's form, or None."""
        if re.fullmatch(self.symbol_pattern, symbol):
            return None
        return f"symbol {symbol!r} is not in {self.name}'s form (e.g. {self.symbol_example!r})"
