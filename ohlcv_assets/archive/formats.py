"""Which ``CandleArchive`` implementation reads a venue's archive: its profile's ``archive_format``."""

from __future__ import annotations

from ohlcv_assets.archive import CandleArchive
from ohlcv_assets.archive.binance_vision import BinanceVisionArchive
from ohlcv_assets.archive.kraken_ohlcvt import KrakenOhlcvtArchive
from ohlcv_assets.universe import ExchangeConfig

FORMATS = {"binance_vision": BinanceVisionArchive, "kraken_ohlcvt": KrakenOhlcvtArchive}


def build_archive(config: ExchangeConfig, egress_address: str | None = None) -> CandleArchive | None:
    """The venue's archive as its universe entry configures it (None: no archive configured)."""
    if config.archive is None:
        return None
    return FORMATS[config.profile.archive_format](config, egress_address)
