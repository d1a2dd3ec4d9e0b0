from ohlcv_assets.defs.resources.exchange import ExchangeResource
from ohlcv_assets.defs.resources.warehouse import WarehouseResource

__all__ = ["ExchangeResource", "WarehouseResource"]
