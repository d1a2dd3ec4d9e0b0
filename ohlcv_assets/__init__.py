"""ohlcv_assets: OHLCV candles from exchanges as partitioned Dagster assets.

``load_candles`` is the read API (see ``ohlcv_assets.warehouse.read``); it is imported lazily so that
``import ohlcv_assets`` stays cheap.
"""


def __getattr__(name: str):
    if name == "load_candles":
        from ohlcv_assets.warehouse.read import load_candles

        return load_candles
    raise AttributeError(name)
