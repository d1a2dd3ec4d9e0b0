"""Command-line tools: ohlcv (register, materialize, backfill), ohlcv-status, ohlcv-demo."""
