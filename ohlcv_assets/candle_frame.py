"""The candle frame every part passes around: open time (epoch ms) and OHLCV as float64, one row
per candle, ascending, plus what a venue gives beyond OHLCV (NaN where it does not: see
``EXTRA_COLUMNS``). Sources build it, the warehouse stores it; neither imports the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

CANDLE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]
# Binance: quote volume, trades, taker-buy base and quote volume; Kraken: vwap and trades;
# Polygon: vwap and trades; Coinbase: none.
EXTRA_COLUMNS = ["quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume", "vwap"]
ROW_WIDTH = len(CANDLE_COLUMNS) + len(EXTRA_COLUMNS)


def empty_rows() -> np.ndarray:
    return np.empty((0, ROW_WIDTH))


def widen(core: np.ndarray, **extras: np.ndarray) -> np.ndarray:
    """(n, 6) OHLCV rows and the extra columns a venue gave, as (n, ROW_WIDTH) rows (NaN elsewhere)."""
    rows = np.full((len(core), ROW_WIDTH), np.nan)
    rows[:, :len(CANDLE_COLUMNS)] = core[:, :len(CANDLE_COLUMNS)]
    for name, values in extras.items():
        rows[:, len(CANDLE_COLUMNS) + EXTRA_COLUMNS.index(name)] = values
    return rows


def empty_candles() -> pd.DataFrame:
    return rows_to_frame(empty_rows())


def rows_to_frame(rows: np.ndarray) -> pd.DataFrame:
    """Rows of ROW_WIDTH (or of the six OHLCV columns only) as a candle frame."""
    if rows.shape[1] == len(CANDLE_COLUMNS):
        rows = widen(rows)
    frame = pd.DataFrame(rows[:, 1:].astype(np.float64), columns=[*CANDLE_COLUMNS[1:], *EXTRA_COLUMNS])
    frame.insert(0, "open_time", rows[:, 0].astype(np.int64))
    return frame
