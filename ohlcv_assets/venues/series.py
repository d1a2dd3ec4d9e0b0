"""A perpetual contract's series beside its trade candles, the names every part uses for them, and
what ccxt says a venue offers of them.

- ``mark``, ``index``, ``premium``: price klines (mark price, index price, premium index), stored
  as candles under a series code (``mark_1h``, ``idx_1h``, ``prem_1h``: see ``series_code``) with no volume;
- ``funding``: the funding rate settlements, an event series on the venue's funding interval;
- ``open_interest``: the open interest every 5 minutes (the venue's resolution), code ``oi_5m``.

A venue module declares the series it serves (``VenueProfile.series``); the generic ccxt venue
offers what ccxt's ``has`` says (``CCXT_HAS``). Not a venue: it declares no ``PROFILE``.
"""

from __future__ import annotations

PRICE_SERIES = ("mark", "index", "premium")
EVENT_SERIES = ("funding",)
SERIES = PRICE_SERIES + EVENT_SERIES + ("open_interest",)
CCXT_HAS = {"mark": "fetchMarkOHLCV", "index": "fetchIndexOHLCV", "premium": "fetchPremiumIndexOHLCV",
            "funding": "fetchFundingRateHistory", "open_interest": "fetchOpenInterestHistory"}  # ccxt's unified method of each
OI_PERIOD = "5m"  # open interest is stored at the venue's resolution: Binance's metrics files hold 5-minute rows
OI_CODE = "oi_5m"
FUNDING_FRESHNESS_INTERVAL = "8h"  # the longest funding interval venues use: a day's settlements are that far apart at most
CCXT_PRICE = {"mark": "mark", "index": "index", "premium": "premiumIndex"}  # fetch_ohlcv's params.price
FUNDING_CODE = "funding"
_SEPARATOR = "_"
# A code is stored where the interval is (``timeframe`` columns of 8 characters, the LIST-partition key of the
# candle tables on PostgreSQL, whose type cannot be altered): short prefixes keep every code within 8 (prem_12h).
CODE_PREFIX = {"mark": "mark", "index": "idx", "premium": "prem", "open_interest": "oi"}
_SERIES_OF_PREFIX = {prefix: series for series, prefix in CODE_PREFIX.items()}
CODE_PREFIXES = frozenset(_SERIES_OF_PREFIX)


def series_code(series: str, interval: str | None = None) -> str:
    """The key a series is stored and partitioned under: the interval alone for trade candles
    (``1m``: every existing key stays), ``<prefix>_<interval>`` for a price series (``mark_1h``,
    ``idx_1h``, ``prem_1h``: ``CODE_PREFIX``), ``funding`` for funding rates. At most 8 characters,
    free of the characters Dagster keys avoid (``|``, ``,``, ``/``)."""
    if series == "trades":
        if interval is None:
            raise ValueError("trade candles need an interval")
        return interval
    if series in PRICE_SERIES:
        if interval is None:
            raise ValueError(f"{series} klines need an interval")
        return f"{CODE_PREFIX[series]}{_SEPARATOR}{interval}"
    if series == "open_interest":
        return OI_CODE
    if series == "funding":
        return FUNDING_CODE
    raise ValueError(f"unknown series {series!r} (known: trades, {', '.join(SERIES)})")


def parse_series_code(code: str) -> tuple[str, str | None]:
    """(series, interval) of a series code: ``1m`` -> (trades, 1m), ``idx_1h`` -> (index, 1h),
    ``funding`` -> (funding, None)."""
    if code == FUNDING_CODE:
        return "funding", None
    prefix, sep, interval = code.partition(_SEPARATOR)
    if sep and prefix in _SERIES_OF_PREFIX and interval:
        return _SERIES_OF_PREFIX[prefix], interval
    if sep:
        raise ValueError(f"unknown series code {code!r}")
    return "trades", code


def ccxt_offers(ccxt_id: str, series: str) -> tuple[bool, str]:
    """Whether ccxt's class of ``ccxt_id`` has the unified method of ``series`` (static, no
    network), and how to say so: ``ccxt has['fetchPremiumIndexOHLCV'] = False``."""
    import ccxt

    method = CCXT_HAS[series]
    has = (getattr(ccxt, ccxt_id)().has or {}).get(method)
    return bool(has), f"ccxt has[{method!r}] = {has!r}"


def archived(profile, code: str) -> bool:
    """Whether the venue's archive (if the universe configures it) holds the candles series of ``code``."""
    return parse_series_code(code)[0] in profile.archive_series


def is_trade_candles(code: str) -> bool:
    """Whether a candles code is trade candles (an interval), not a price series."""
    return parse_series_code(code)[0] == "trades"


def signed_prices(code: str) -> bool:
    """Whether the series' values may be zero or negative (the premium index), not prices > 0."""
    return parse_series_code(code)[0] == "premium"


def finest_code(code: str) -> str:
    """The 1m code of the same series (``idx_1h`` -> ``idx_1m``; ``1h`` -> ``1m``): what its
    candles are checked against."""
    series, _ = parse_series_code(code)
    return series_code(series, "1m")
