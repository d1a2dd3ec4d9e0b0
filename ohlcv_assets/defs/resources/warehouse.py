"""The warehouse as a Dagster resource: one engine per run, schema migrated before first use."""


import dagster as dg
from pydantic import PrivateAttr

from ohlcv_assets.core.settings import WAREHOUSE_URL_ENV, warehouse_url, warehouse_url_is_explicit
from ohlcv_assets.warehouse.store import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where candles are stored; ``url`` is a SQLAlchemy URL (postgresql://… or sqlite:///…)."""

    url: str
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls) -> "WarehouseResource":
        """The warehouse ``ohlcv_assets.core.settings`` resolves; an explicit URL stays an EnvVar, so a
        password in it is never shown in the UI."""
        return cls(url=dg.EnvVar(WAREHOUSE_URL_ENV) if warehouse_url_is_explicit() else warehouse_url())

    @property
    def warehouse(self) -> Warehouse:
        """Opened (and its schema migrated) on first use, in runs and sensors alike."""
        if self._warehouse is None:
            warehouse = Warehouse(self.url)
            warehouse.open_and_migrate()
            self._warehouse = warehouse
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()
