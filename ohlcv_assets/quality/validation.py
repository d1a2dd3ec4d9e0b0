"""Frame schemas (pandera): what a candle frame must satisfy before it is written.

A batch of candles is first judged by ``candle_rules_hold``, the schema's rules in a few numpy
operations: a frame they pass is one the schema passes (a year of 1m, 11 batches, spent 0.5 s in
pandera, and importing pandera 0.2 s more). Any other frame goes to pandera, which decides and
names every offending candle, so what passes and every error are the schema's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ohlcv_assets.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.core.intervals import ms_to_iso

if TYPE_CHECKING:
    import pandera.pandas as pa


class CandleValidationError(ValueError):
    """A frame broke the candle schema; ``offending`` holds the offending candles."""

    def __init__(self, message: str, offending: pd.DataFrame):
        super().__init__(message)
        self.offending = offending


def candle_schema(step_ms: int, now_ms: int, signed: bool = False) -> pa.DataFrameSchema:
    """``signed``: a series whose values may be zero or negative (the premium index): finite, any sign."""
    import pandera.pandas as pa

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


def candle_rules_hold(frame: pd.DataFrame, step_ms: int, now_ms: int, signed: bool = False) -> bool:
    """True only if ``candle_schema`` passes the frame: its columns exactly (OHLCV, then all the
    extras or none), their dtypes, and every rule of the schema, in numpy. False says nothing (the
    schema decides)."""
    columns = list(frame.columns)
    if columns not in (CANDLE_COLUMNS, [*CANDLE_COLUMNS, *EXTRA_COLUMNS]) or frame["open_time"].dtype != np.int64 \
            or any(frame[c].dtype != np.float64 for c in columns[1:]):
        return False
    t = frame["open_time"].to_numpy()
    o, h, l, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    with np.errstate(invalid="ignore"):
        prices_ok = np.isfinite(o).all() and np.isfinite(h).all() and np.isfinite(l).all() and np.isfinite(c).all() and (
            signed or ((o > 0).all() and (h > 0).all() and (l > 0).all() and (c > 0).all()))
        if not (prices_ok and np.isfinite(v).all() and (v >= 0).all()):
            return False
        if not all((np.isnan(x) | (x >= 0)).all() for x in (frame[e].to_numpy() for e in columns[len(CANDLE_COLUMNS):])):
            return False
    ascending = len(t) < 2 or bool((t[1:] > t[:-1]).all())  # unique without a sort, as batches come
    if not ((t % step_ms == 0).all() and (t + step_ms <= now_ms).all() and (ascending or len(np.unique(t)) == len(t))):
        return False
    return bool((h >= np.maximum(np.maximum(o, c), l)).all() and (l <= np.minimum(o, c)).all())


def validate_candles(frame: pd.DataFrame, step_ms: int, now_ms: int, signed: bool = False) -> pd.DataFrame:
    """Returns the frame, or raises CandleValidationError listing every offending candle."""
    if candle_rules_hold(frame, step_ms, now_ms, signed):
        return frame
    import pandera.pandas as pa

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
    import pandera.pandas as pa

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
    import pandera.pandas as pa

    try:
        return feature_schema(list(frame.columns)).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise CandleValidationError(f"features break their schema:\n{err.failure_cases.head(20).to_string()}", frame.iloc[0:0]) from None
