"""ohlcv_assets: OHLCV candles from exchanges as partitioned Dagster assets."""
