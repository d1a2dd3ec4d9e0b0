"""Which ``CandleSource`` implementation talks to a venue: its profile says (``ccxt`` or ``polygon``)."""

from __future__ import annotations

import importlib

from ohlcv_assets.exchange.rate_budget import RateBudget
from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.core.universe import ExchangeConfig

# Imported when a venue needs it: ccxt's import (every exchange it knows) costs 0.4 s, and a run
# that reads only archives, or only Polygon, never needs it.
SOURCE_CLASSES = {"ccxt": "ohlcv_assets.exchange.ccxt_source:CcxtCandleSource",
                  "polygon": "ohlcv_assets.exchange.polygon_source:PolygonCandleSource"}


def source_class(kind: str) -> type[CandleSource]:
    module, name = SOURCE_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_source(name: str, config: ExchangeConfig, budget: RateBudget | None = None,
                 egress_address: str | None = None) -> CandleSource:
    """The venue's source; its requests leave from ``egress_address`` when given."""
    return source_class(config.profile.source)(name, config, budget, egress_address=egress_address)
