"""Binance.US: Binance's spot protocol on its own host, with its own order books. Binance's public
archive (data.binance.vision) holds Binance.com's candles, not these, so it has no archive: a
universe giving it one is refused rather than storing another venue's candles under its symbols.
Through ccxt it is asked as Binance is (spot markets only, raw klines: see ``binance``)."""

import dataclasses

from ohlcv_assets.venues import binance

PROFILE = dataclasses.replace(binance.PROFILE, name="binanceus", archive_format=None)
