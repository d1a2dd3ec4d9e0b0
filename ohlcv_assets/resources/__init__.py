from ohlcv_assets.resources.exchange import ExchangeResource
from ohlcv_assets.resources.warehouse import WarehouseResource, default_warehouse_url

__all__ = ["ExchangeResource", "WarehouseResource", "default_warehouse_url"]
