"""Which ``CandleSource`` implementation talks to a venue: its profile says (``ccxt`` or ``polygon``)."""

from __future__ import annotations

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.exchange.polygon_source import PolygonCandleSource
from ohlcv_assets.exchange.rate_budget import RateBudget
from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.universe import ExchangeConfig

SOURCE_CLASSES = {"ccxt": CcxtCandleSource, "polygon": PolygonCandleSource}


def build_source(name: str, config: ExchangeConfig, budget: RateBudget | None = None,
                 egress_address: str | None = None) -> CandleSource:
    """The venue's source; its requests leave from ``egress_address`` when given."""
    return SOURCE_CLASSES[config.profile.source](name, config, budget, egress_address=egress_address)
