"""The candle frame every part passes around: open time (epoch ms) and OHLCV as float64, one row
per candle, ascending. Sources build it, the warehouse stores it; neither imports the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

CANDLE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]


def empty_candles() -> pd.DataFrame:
    return rows_to_frame(np.empty((0, 6)))


def rows_to_frame(rows: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(rows[:, 1:6].astype(np.float64), columns=CANDLE_COLUMNS[1:])
    frame.insert(0, "open_time", rows[:, 0].astype(np.int64))
    return frame
