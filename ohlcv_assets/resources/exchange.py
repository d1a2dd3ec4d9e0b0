"""Exchanges as a Dagster resource: a candle source per exchange of the universe."""


import dagster as dg
from pydantic import PrivateAttr

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.universe import Universe, load_universe


class ExchangeResource(dg.ConfigurableResource):
    """Candle sources for the universe's exchanges (path empty: OHLCV_UNIVERSE or the demo)."""

    universe_path: str = ""
    _sources: dict[str, CandleSource] = PrivateAttr(default_factory=dict)
    _universe: Universe | None = PrivateAttr(default=None)

    @property
    def universe(self) -> Universe:
        if self._universe is None:
            self._universe = load_universe(self.universe_path or None)
        return self._universe

    def source(self, exchange: str) -> CandleSource:
        if exchange not in self._sources:
            self._sources[exchange] = CcxtCandleSource(exchange, self.universe.exchanges[exchange])
        return self._sources[exchange]
