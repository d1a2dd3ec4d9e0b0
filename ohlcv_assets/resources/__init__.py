from ohlcv_assets.resources.exchange import ExchangeResource
from ohlcv_assets.resources.warehouse import WarehouseResource

__all__ = ["ExchangeResource", "WarehouseResource"]
