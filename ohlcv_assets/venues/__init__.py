"""What each venue's API is like, declared once per venue: page size, history depth, what a
missing candle means, its trading calendar, its rate-limit model, the symbol form it takes, and
where its API differs from what the shared ccxt client does by default (its ccxt settings, how a
page of its candles is read).

The universe takes its defaults from here, the sources page and budget by it, and the gap scan
reads its absence rule from it. A venue is a module of this package exposing ``PROFILE`` (a
``VenueProfile``): the registry below finds every such module, so a new venue is one new module
beside these and nothing else (the universe's list of venues is this registry's). Modules without
``PROFILE`` (``profile``, ``ccxt_candles``) are the shapes venues share, not venues.
"""

from __future__ import annotations

import importlib
import pkgutil

from ohlcv_assets.venues import ccxt_generic
from ohlcv_assets.venues.profile import VenueProfile

__all__ = ["VenueProfile", "PROFILES", "GENERIC_CCXT", "profile_for", "discover", "known_venues"]

GENERIC_CCXT = ccxt_generic.PROFILE  # any other ccxt exchange: the fallback, not a venue a ccxt id names
PROFILES: dict[str, VenueProfile] = {}  # every venue but the generic ccxt one, by name (module order)


def discover() -> dict[str, VenueProfile]:
    """Fills ``PROFILES`` (in place: importers keep the one dict) from the modules on this
    package's ``__path__`` that expose ``PROFILE``; run at import, and again by whoever extends
    ``__path__``. Two modules naming the same venue are an error, not a silent choice."""
    found: dict[str, tuple[str, VenueProfile]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        profile = getattr(module, "PROFILE", None)
        if not isinstance(profile, VenueProfile):
            continue
        if profile.name in found:
            raise ImportError(f"venues {found[profile.name][0]!r} and {info.name!r} both declare the venue {profile.name!r}")
        found[profile.name] = (info.name, profile)
    PROFILES.clear()
    PROFILES.update((name, profile) for name, (_, profile) in found.items() if profile is not GENERIC_CCXT)
    return PROFILES


def known_venues() -> str:
    """The venue names a universe may give, for messages and the universe's field description."""
    return f"{', '.join(PROFILES)}, or {GENERIC_CCXT.name} (any other ccxt exchange)"


def profile_for(venue: str | None, ccxt_id: str | None) -> VenueProfile:
    """The profile of a universe exchange entry: its ``venue`` if named, else its ccxt id's, else
    the generic ccxt one (any exchange ccxt knows, without venue-specific knowledge)."""
    if venue is not None:
        if venue not in PROFILES and venue != GENERIC_CCXT.name:
            raise KeyError(f"unknown venue {venue!r} (known: {', '.join([*PROFILES, GENERIC_CCXT.name])})")
        return PROFILES.get(venue, GENERIC_CCXT)
    return PROFILES.get(ccxt_id or "", GENERIC_CCXT)


discover()
