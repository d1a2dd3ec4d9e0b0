"""What each venue's API is like, declared once per venue: page size, history depth, what a
missing candle means, its trading calendar, its rate-limit model and the symbol form it takes.

The universe takes its defaults from here, the sources page and budget by it, and the gap scan
reads its absence rule from it. A new venue is a new module beside these, added to ``PROFILES``.
"""

from __future__ import annotations

from ohlcv_assets.venues import binance, binanceus, binanceusdm, ccxt_generic, coinbase, kraken, polygon
from ohlcv_assets.venues.profile import VenueProfile

__all__ = ["VenueProfile", "PROFILES", "GENERIC_CCXT", "profile_for"]

PROFILES: dict[str, VenueProfile] = {
    p.name: p for p in (binance.PROFILE, binanceus.PROFILE, binanceusdm.PROFILE, kraken.PROFILE, coinbase.PROFILE, polygon.PROFILE)}
GENERIC_CCXT = ccxt_generic.PROFILE


def profile_for(venue: str | None, ccxt_id: str | None) -> VenueProfile:
    """The profile of a universe exchange entry: its ``venue`` if named, else its ccxt id's, else
    the generic ccxt one (any exchange ccxt knows, without venue-specific knowledge)."""
    if venue is not None:
        if venue not in PROFILES and venue != GENERIC_CCXT.name:
            raise KeyError(f"unknown venue {venue!r} (known: {', '.join([*PROFILES, GENERIC_CCXT.name])})")
        return PROFILES.get(venue, GENERIC_CCXT)
    return PROFILES.get(ccxt_id or "", GENERIC_CCXT)
