"""Frame schemas (pandera): what a candle frame must satisfy before it is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ohlcv_assets.candle_frame import EXTRA_COLUMNS
from ohlcv_assets.core.intervals import ms_to_iso


class CandleValidationError(ValueError):
    """A frame broke the candle schema; ``offending`` holds the offending candles."""

    def __init__(self, message: str, offending: pd.DataFrame):
        super().__init__(message)
        self.offending = offending


def candle_schema(step_ms: int, now_ms: int, signed: bool = False) -> pa.DataFrameSchema:
    """``signed``: a series whose values may be zero or negative (the premium index): finite, any sign."""
    finite = pa.Check(np.isfinite, element_wise=False, error="not finite")
    price = [finite] if signed else [pa.Check.gt(0), finite]
    return pa.DataFrameSchema(
        {
            "open_time": pa.Column("int64", [
                pa.Check(lambda t: t % step_ms == 0, error="open time is not on the interval grid"),
                pa.Check(lambda t: t + step_ms <= now_ms, error="candle has not closed yet"),
            ], unique=True),
            "open": pa.Column("float64", price),
            "high": pa.Column("float64", price),
            "low": pa.Column("float64", price),
            "close": pa.Column("float64", price),
            "volume": pa.Column("float64", [pa.Check.ge(0), pa.Check(np.isfinite, element_wise=False, error="not finite")]),
            **{name: pa.Column("float64", pa.Check.ge(0), nullable=True, required=False) for name in EXTRA_COLUMNS},
        },
        checks=[
            pa.Check(lambda f: f["high"] >= f[["open", "close", "low"]].max(axis=1), error="high is below open, close or low"),
            pa.Check(lambda f: f["low"] <= f[["open", "close"]].min(axis=1), error="low is above open or close"),
        ],
        strict=True,
        ordered=True,
    )


def validate_candles(frame: pd.DataFrame, step_ms: int, now_ms: int, signed: bool = False) -> pd.DataFrame:
    """Returns the frame, or raises CandleValidationError listing every offending candle."""
    try:
        return candle_schema(step_ms, now_ms, signed).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        rows = cases["index"].dropna().astype(int).unique()
        offending = frame.loc[frame.index.intersection(rows)].copy()
        offending.insert(0, "open_time_utc", [ms_to_iso(t) for t in offending["open_time"]])
        problems = sorted({f"{c['column'] or 'row'}: {c['check']}" for c in cases.to_dict("records")})
        raise CandleValidationError(
            f"{len(offending)} candle(s) break the candle schema ({'; '.join(problems)}):\n{offending.to_string(index=False)}",
            offending,
        ) from None


def feature_schema(columns: list[str]) -> pa.DataFrameSchema:
    """Features: a unique time index, integer gaps, and values that can be what they claim."""
    checks = {
        "open_time": pa.Column("int64", unique=True),
        "gap_candles": pa.Column("int64", pa.Check.ge(0)),
        "warmed_up": pa.Column("bool"),
    }
    bounded = {"rsi_": pa.Check.in_range(0, 100), "atr_": pa.Check.ge(0), "volume_sma_": pa.Check.ge(0),
               "realized_vol_": pa.Check.ge(0), "bb_width_": pa.Check.ge(0)}
    for name in columns:
        if name not in checks:
            rule = next((check for prefix, check in bounded.items() if name.startswith(prefix)), None)
            checks[name] = pa.Column("float64", [rule] if rule else [], nullable=True)
    return pa.DataFrameSchema(checks, strict=True, ordered=True)


def validate_features(frame: pd.DataFrame) -> pd.DataFrame:
    try:
        return feature_schema(list(frame.columns)).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise CandleValidationError(f"features break their schema:\n{err.failure_cases.head(20).to_string()}", frame.iloc[0:0]) from None
