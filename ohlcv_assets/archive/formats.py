"""Which ``CandleArchive`` implementation reads a venue's archive: its profile's ``archive_format``."""

from __future__ import annotations

from ohlcv_assets.archive import CandleArchive
from ohlcv_assets.archive.binance_vision import BinanceVisionArchive
from ohlcv_assets.archive.kraken_ohlcvt import KrakenOhlcvtArchive
from ohlcv_assets.core.universe import ExchangeConfig

FORMATS = {"binance_vision": BinanceVisionArchive, "kraken_ohlcvt": KrakenOhlcvtArchive}


def build_archive(config: ExchangeConfig, egress_address: str | None = None) -> CandleArchive | None:
    """The venue's archive as its universe entry configures it (None: no archive configured)."""
    if config.archive is None:
        return None
    return FORMATS[config.profile.archive_format](config, egress_address)


def archive_signature(config: ExchangeConfig) -> str:
    """The venue's archive as it is now ("" without one), by its format's ``signature_of``."""
    return "" if config.archive is None else FORMATS[config.profile.archive_format].signature_of(config.archive)
