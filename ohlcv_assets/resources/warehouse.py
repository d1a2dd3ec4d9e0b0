"""The warehouse as a Dagster resource: one engine per run, schema migrated before first use."""


import os

import dagster as dg
from pydantic import PrivateAttr

from ohlcv_assets.warehouse.store import Warehouse

WAREHOUSE_URL_ENV = "OHLCV_WAREHOUSE_URL"


def default_warehouse_url() -> str:
    """SQLite beside the Dagster instance (or in the working directory) when no URL is set."""
    home = os.environ.get("DAGSTER_HOME") or "."
    return f"sqlite:///{os.path.abspath(os.path.join(home, 'warehouse.db'))}"


class WarehouseResource(dg.ConfigurableResource):
    """Where candles are stored; ``url`` is a SQLAlchemy URL (postgresql://… or sqlite:///…)."""

    url: str
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    @property
    def warehouse(self) -> Warehouse:
        """Opened (and its schema migrated) on first use, in runs and sensors alike."""
        if self._warehouse is None:
            self._warehouse = Warehouse(self.url)
            self._warehouse.migrate()
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()
