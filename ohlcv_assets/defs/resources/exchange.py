"""Exchanges as a Dagster resource: a candle source per exchange of the universe."""


import dagster as dg
from pydantic import PrivateAttr

from ohlcv_assets.archive import CandleArchive
from ohlcv_assets.archive.formats import build_archive
from ohlcv_assets.http.egress import budget_key
from ohlcv_assets.exchange.rate_budget import SharedRateBudget
from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.exchange.sources import build_source
from ohlcv_assets.defs.resources.warehouse import WarehouseResource
from ohlcv_assets.core.settings import egress_address
from ohlcv_assets.core.universe import Universe, load_universe


class ExchangeResource(dg.ConfigurableResource):
    """Candle sources (and bulk archives) for the universe's exchanges (path empty: OHLCV_UNIVERSE or the demo).

    Every source draws on its exchange's request budget kept in the warehouse, so that all runs
    against one exchange share it: one budget per venue and egress address (``OHLCV_EGRESS_ADDRESS``,
    which the source's requests then leave from; see ``settings.egress_address``)."""

    universe_path: str = ""
    warehouse: dg.ResourceDependency[WarehouseResource]
    _sources: dict[str, CandleSource] = PrivateAttr(default_factory=dict)
    _archives: dict[str, CandleArchive | None] = PrivateAttr(default_factory=dict)
    _universe: Universe | None = PrivateAttr(default=None)

    @property
    def universe(self) -> Universe:
        if self._universe is None:
            self._universe = load_universe(self.universe_path or None)
        return self._universe

    def source(self, exchange: str) -> CandleSource:
        if exchange not in self._sources:
            config = self.universe.exchanges[exchange]
            egress = egress_address()
            budget = SharedRateBudget(self.warehouse.warehouse.engine, budget_key(exchange, egress), config)
            self._sources[exchange] = build_source(exchange, config, budget, egress)
        return self._sources[exchange]

    def archive(self, exchange: str) -> CandleArchive | None:
        """The exchange's bulk archive, if its universe entry configures one."""
        if exchange not in self._archives:
            self._archives[exchange] = build_archive(self.universe.exchanges[exchange], egress_address())
        return self._archives[exchange]
