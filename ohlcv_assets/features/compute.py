"""Technical features of candles, vectorised, and identical wherever the computation starts.

Rolling indicators (SMA, Bollinger bands, realised volatility, volume z-score) are computed window
by window from the window's own candles, so a value never depends on where the computation began.
Recursive indicators (EMA, MACD, RSI and ATR, Wilder-smoothed) are computed over the stored candles
from ``warmup_candles`` candles before the first candle asked for: a seed that far back weighs less
than (1 - alpha)**warmup_candles, below 1e-15 with the defaults, so computing one day alone and a
whole range in one go agree to float64 precision. ``warmed_up`` says whether a candle has that much
stored history before it; before that, recursive values depend on where the stored history starts.

Features run over the candles that exist, in time order: missing candles are never invented.
``gap_candles`` counts the grid candles missing just before each candle (0 normally), and returns
across a gap span the gap.
"""


import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ohlcv_assets.core.feature_params import FEATURE_PARAMS, FeatureParams
from ohlcv_assets.core.intervals import DAY_MS


def rolling(values: np.ndarray, window: int, reducer) -> np.ndarray:
    """reducer over each full window ending at each position (NaN before the first full window)."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1:] = reducer(sliding_window_view(values, window), axis=1)
    return out


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Recursive exponential average seeded with the first value (pandas' C loop)."""
    return pd.Series(values).ewm(alpha=alpha, adjust=False).mean().to_numpy(copy=True)


def _lead_nan(values: np.ndarray, count: int) -> np.ndarray:
    """NaN for the first ``count`` positions, where the indicator has too little input (TA-Lib's lookback)."""
    values = values.copy()
    values[:count] = np.nan
    return values


def compute_features(candles: pd.DataFrame, step_ms: int, params: FeatureParams = FEATURE_PARAMS,
                     history_before: int = 0) -> pd.DataFrame:
    """Features for each candle of ``candles`` (ascending, with its warm-up candles in front).

    ``history_before`` is how many stored candles precede the first row of ``candles``; it only
    feeds the ``warmed_up`` flag.
    """
    t = candles["open_time"].to_numpy()
    o, h, l, c, v = (candles[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))
    n = len(c)
    prev_c = np.r_[np.nan, c[:-1]]
    out = {"open_time": t}
    out["gap_candles"] = np.r_[0, np.diff(t) // step_ms - 1].astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    out["warmed_up"] = (history_before + np.arange(n)) >= params.warmup_candles
    out["return_1"] = c / prev_c - 1.0
    out["log_return_1"] = np.log(c / prev_c)
    for w in params.sma_windows:
        out[f"sma_{w}"] = rolling(c, w, np.mean)
    for span in params.ema_spans:
        out[f"ema_{span}"] = _lead_nan(ema(c, 2.0 / (span + 1)), span - 1)

    p = params.rsi_period
    change = np.diff(c, prepend=np.nan)
    gain, loss = np.clip(change, 0, None), np.clip(-change, 0, None)
    avg_gain, avg_loss = ema(gain[1:], 1.0 / p), ema(loss[1:], 1.0 / p)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(avg_loss == 0, 100.0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    out[f"rsi_{p}"] = _lead_nan(np.r_[np.nan, rsi], p) if n else np.zeros(0)

    fast, slow, signal = params.macd
    macd = ema(c, 2.0 / (fast + 1)) - ema(c, 2.0 / (slow + 1))
    macd_signal = ema(macd, 2.0 / (signal + 1))
    lookback = slow + signal - 2
    out[f"macd_{fast}_{slow}_{signal}"] = _lead_nan(macd, lookback)
    out[f"macd_signal_{fast}_{slow}_{signal}"] = _lead_nan(macd_signal, lookback)
    out[f"macd_hist_{fast}_{slow}_{signal}"] = _lead_nan(macd - macd_signal, lookback)

    bb_n, bb_k = params.bollinger
    middle = rolling(c, bb_n, np.mean)
    std = rolling(c, bb_n, np.std)  # population std, as TA-Lib's BBANDS
    out[f"bb_upper_{bb_n}_{bb_k}"] = middle + bb_k * std
    out[f"bb_middle_{bb_n}_{bb_k}"] = middle
    out[f"bb_lower_{bb_n}_{bb_k}"] = middle - bb_k * std
    out[f"bb_width_{bb_n}_{bb_k}"] = 2 * bb_k * std / middle

    a = params.atr_period
    true_range = np.fmax(h - l, np.fmax(np.abs(h - prev_c), np.abs(l - prev_c)))
    out[f"atr_{a}"] = _lead_nan(np.r_[np.nan, ema(true_range[1:], 1.0 / a)], a) if n else np.zeros(0)

    day = t // DAY_MS
    typical_volume = pd.Series((h + l + c) / 3.0 * v)
    cum_pv = typical_volume.groupby(day).cumsum().to_numpy()
    cum_v = pd.Series(v).groupby(day).cumsum().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["vwap_day"] = np.where(cum_v > 0, cum_pv / cum_v, np.nan)

    out[f"realized_vol_{params.realized_vol_window}"] = np.sqrt(rolling(out["log_return_1"], params.realized_vol_window, lambda x, axis: np.sum(x * x, axis=axis)))
    vw = params.volume_window
    vol_mean = rolling(v, vw, np.mean)
    vol_std = rolling(v, vw, np.std)
    out[f"volume_sma_{vw}"] = vol_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        out[f"volume_z_{vw}"] = np.where(vol_std > 0, (v - vol_mean) / vol_std, 0.0)
    out[f"volume_z_{vw}"] = np.where(np.isnan(vol_mean), np.nan, out[f"volume_z_{vw}"])
    return pd.DataFrame(out)[["open_time", *params.columns()]]
