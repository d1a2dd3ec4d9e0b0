"""Features against TA-Lib, and the same numbers whether computed day by day or in one pass."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import talib

from ohlcv_assets.features.derive import derive_days, features_for_days
from ohlcv_assets.features.compute import FEATURE_PARAMS, compute_features
from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.simulator.market import SimSymbol, SimulatedMarket
from ohlcv_assets.warehouse.schema import candle_features

W = FEATURE_PARAMS.warmup_candles
TOLERANCE = 1e-9  # relative, after the warm-up window: seeds differ, their weight is gone
MARKET = SimulatedMarket({"BTCUSDT": SimSymbol("BTC", "USDT", dt.date(2020, 1, 1), 60000.0)})
from ohlcv_assets_tests.helpers import merge_candles


def minute_candles(first: dt.date, days: int) -> pd.DataFrame:
    start = day_bounds_ms(first)[0]
    arrays = MARKET.candles(MARKET.symbols["BTCUSDT"], MINUTE_MS, start, start + days * DAY_MS, start + (days + 1) * DAY_MS)
    return pd.DataFrame(arrays.as_floats())


@pytest.fixture(scope="module")
def candles():
    return minute_candles(dt.date(2026, 9, 1), 4)


@pytest.fixture(scope="module")
def features(candles):
    return compute_features(candles, MINUTE_MS)


def after_warmup(values):
    return np.asarray(values)[W:]


def close_to(ours, reference):
    np.testing.assert_allclose(after_warmup(ours), after_warmup(reference), rtol=TOLERANCE, atol=1e-9)


def test_moving_averages_match_talib(candles, features):
    c = candles["close"].to_numpy()
    for n in FEATURE_PARAMS.sma_windows:
        close_to(features[f"sma_{n}"], talib.SMA(c, n))
    for n in FEATURE_PARAMS.ema_spans:
        close_to(features[f"ema_{n}"], talib.EMA(c, n))


def test_rsi_macd_atr_match_talib(candles, features):
    h, l, c = (candles[k].to_numpy() for k in ("high", "low", "close"))
    close_to(features["rsi_14"], talib.RSI(c, 14))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    close_to(features["macd_12_26_9"], macd)
    close_to(features["macd_signal_12_26_9"], signal)
    close_to(features["macd_hist_12_26_9"], hist)
    close_to(features["atr_14"], talib.ATR(h, l, c, 14))


def test_bollinger_bands_match_talib(candles, features):
    upper, middle, lower = talib.BBANDS(candles["close"].to_numpy(), 20, 2, 2)
    close_to(features["bb_upper_20_2"], upper)
    close_to(features["bb_middle_20_2"], middle)
    close_to(features["bb_lower_20_2"], lower)
    close_to(features["bb_width_20_2"], (upper - lower) / middle)


def test_returns_vwap_volatility_and_volume_match_pandas(candles, features):
    c, v = candles["close"], candles["volume"]
    close_to(features["return_1"], c.pct_change())
    close_to(features["log_return_1"], np.log(c).diff())
    close_to(features["realized_vol_60"], np.sqrt((np.log(c).diff() ** 2).rolling(60).sum()))
    close_to(features["volume_sma_20"], talib.SMA(v.to_numpy(), 20))
    close_to(features["volume_z_20"], (v - v.rolling(20).mean()) / v.rolling(20).std(ddof=0))
    day = candles["open_time"] // DAY_MS
    typical = (candles["high"] + candles["low"] + c) / 3
    vwap = (typical * v).groupby(day).cumsum() / v.groupby(day).cumsum()
    np.testing.assert_allclose(features["vwap_day"], vwap, rtol=1e-12)
    assert features["vwap_day"].iloc[1440] == typical.iloc[1440]  # resets at midnight UTC


def test_warm_up_is_flagged_and_nothing_is_nan_after_it(features):
    assert not features["warmed_up"].iloc[:W].any() and features["warmed_up"].iloc[W:].all()
    assert not features.iloc[W:].isna().any().any()


@pytest.fixture
def month_stored(warehouse):
    first = dt.date(2026, 8, 1)
    frame = minute_candles(first, 31)
    merge_candles(warehouse, "binance", "BTC/USDT", "1m", frame, day_bounds_ms(first)[0], day_bounds_ms(first)[0] + 31 * DAY_MS, 1)
    return [first + dt.timedelta(days=n) for n in range(31)]


def test_day_by_day_equals_one_pass_over_thirty_days(warehouse, month_stored):
    days = month_stored[1:]
    one_pass = features_for_days(warehouse, "binance", "BTC/USDT", "1m", days)
    for day in days:
        alone = features_for_days(warehouse, "binance", "BTC/USDT", "1m", [day])[day]
        together = one_pass[day]
        assert alone["open_time"].equals(together["open_time"]) and alone["warmed_up"].equals(together["warmed_up"])
        for column in FEATURE_PARAMS.columns()[2:]:
            np.testing.assert_allclose(alone[column], together[column], rtol=1e-12, atol=0, err_msg=f"{day} {column}")


def test_derived_features_are_stored_and_rederiving_writes_nothing(warehouse, month_stored):
    days = month_stored[3:6]
    reports = derive_days(warehouse, "binance", "BTC/USDT", "1m", days)
    assert [r.rows_written for r in reports.values()] == [1440, 1440, 1440]
    assert all(r.warmup_rows == 0 and r.nan_values == 0 for r in reports.values())
    stored = warehouse.read_rows(candle_features, "binance", "BTC/USDT", "1m", *day_bounds_ms(days[1]))
    expected = features_for_days(warehouse, "binance", "BTC/USDT", "1m", [days[1]])[days[1]]
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)
    again = derive_days(warehouse, "binance", "BTC/USDT", "1m", days)
    assert [r.rows_written for r in again.values()] == [0, 0, 0]


def test_features_run_over_existing_candles_and_mark_gaps():
    frame = minute_candles(dt.date(2026, 9, 1), 2)
    with_gap = frame.drop(index=range(1500, 1590)).reset_index(drop=True)
    features = compute_features(with_gap, MINUTE_MS)
    assert len(features) == len(with_gap)  # no invented rows
    after = features.index[features["open_time"] == frame["open_time"].iloc[1590]][0]
    assert features["gap_candles"].iloc[after] == 90 and features["gap_candles"].drop(index=after).eq(0).all()
    assert features["return_1"].iloc[after] == pytest.approx(frame["close"].iloc[1590] / frame["close"].iloc[1499] - 1)
