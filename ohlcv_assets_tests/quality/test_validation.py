"""The candle schema's numpy judgement (``candle_rules_hold``) passes only what pandera passes, so
``validate_candles`` accepts and refuses exactly what the schema does."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from ohlcv_assets.candle_frame import EXTRA_COLUMNS
from ohlcv_assets.core.intervals import MINUTE_MS
from ohlcv_assets.quality.validation import CandleValidationError, candle_rules_hold, candle_schema, validate_candles

START = 1_704_067_200_000  # 2024-01-01
NOW = START + 10 * 86_400_000


def good(n: int = 50, extras: bool = False, sign: float = 1.0) -> pd.DataFrame:
    base = sign * (100 + np.arange(n) % 7 * 0.5)
    frame = pd.DataFrame({"open_time": START + np.arange(n, dtype=np.int64) * MINUTE_MS, "open": base,
                          "high": np.maximum(base, base + 0.25) + 0.5, "low": np.minimum(base, base + 0.25) - 0.5,
                          "close": base + 0.25, "volume": np.arange(n) * 0.1})
    if extras:
        frame = frame.assign(**{c: np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) * 2.0) for c in EXTRA_COLUMNS})
    return frame


def broken(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    change = {
        "off the grid": lambda: f.__setitem__("open_time", f["open_time"] + np.where(np.arange(len(f)) == 3, 1, 0)),
        "not closed": lambda: f.__setitem__("open_time", f["open_time"] + (NOW - START - 20 * MINUTE_MS)),
        "duplicate time": lambda: f.__setitem__("open_time", f["open_time"].where(f.index != 4, f["open_time"].iloc[3])),
        "zero price": lambda: f.loc.__setitem__((5, "open"), 0.0),
        "negative low": lambda: f.loc.__setitem__((5, "low"), -1.0),
        "nan close": lambda: f.loc.__setitem__((6, "close"), np.nan),
        "infinite high": lambda: f.loc.__setitem__((7, "high"), np.inf),
        "negative volume": lambda: f.loc.__setitem__((8, "volume"), -0.5),
        "nan volume": lambda: f.loc.__setitem__((8, "volume"), np.nan),
        "high below close": lambda: f.loc.__setitem__((9, "high"), f.loc[9, "close"] - 0.1),
        "low above open": lambda: f.loc.__setitem__((10, "low"), f.loc[10, "open"] + 0.1),
        "negative extra": lambda: f.loc.__setitem__((11, "trades"), -3.0) if "trades" in f else f.__setitem__("trades", -1.0),
        "float times": lambda: f.__setitem__("open_time", f["open_time"].astype("float64")),
        "integer volume": lambda: f.__setitem__("volume", np.arange(len(f))),
        "unknown column": lambda: f.__setitem__("colour", 1.0),
        "columns reordered": lambda: None,
        "a column missing": lambda: None,
    }
    change[name]()
    if name == "columns reordered":
        f = f[["open_time", "high", "open", *f.columns[3:]]]
    if name == "a column missing":
        f = f.drop(columns="volume")
    return f


def schema_passes(frame: pd.DataFrame, signed: bool = False) -> bool:
    try:
        candle_schema(MINUTE_MS, NOW, signed).validate(frame, lazy=True)
        return True
    except pa.errors.SchemaErrors:
        return False


@pytest.mark.parametrize("extras", [False, True], ids=["ohlcv", "with extras"])
def test_a_good_batch_passes_both_ways(extras):
    for frame, signed in ((good(extras=extras), False), (good(extras=extras, sign=-1.0), True), (good(0, extras), False)):
        assert candle_rules_hold(frame, MINUTE_MS, NOW, signed) and schema_passes(frame, signed)
        assert validate_candles(frame, MINUTE_MS, NOW, signed) is frame
    negative = good(extras=extras, sign=-1.0)
    assert not candle_rules_hold(negative, MINUTE_MS, NOW) and not schema_passes(negative)


@pytest.mark.parametrize("extras", [False, True], ids=["ohlcv", "with extras"])
@pytest.mark.parametrize("name", ["off the grid", "not closed", "duplicate time", "zero price", "negative low", "nan close",
                                  "infinite high", "negative volume", "nan volume", "high below close", "low above open",
                                  "negative extra", "float times", "integer volume", "unknown column", "columns reordered",
                                  "a column missing"])
def test_a_batch_breaking_a_rule_goes_to_the_schema_which_refuses_it(name, extras):
    frame = broken(name, good(extras=extras))
    assert not candle_rules_hold(frame, MINUTE_MS, NOW)
    assert not schema_passes(frame)
    with pytest.raises(CandleValidationError):
        validate_candles(frame, MINUTE_MS, NOW)
