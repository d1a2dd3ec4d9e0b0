"""Deriving features for instrument-days from the stored candles. No Dagster here."""

import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd

from ohlcv_assets.core.feature_params import FEATURE_PARAMS, FeatureParams
from ohlcv_assets.features.compute import compute_features
from ohlcv_assets.core.intervals import DAY_MS, day_bounds_ms, interval_ms, now_ms
from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.quality.validation import validate_features
from ohlcv_assets.warehouse.schema import candle_features
from ohlcv_assets.warehouse.store import Warehouse


@dataclasses.dataclass
class FeatureReport:
    rows: int = 0
    rows_written: int = 0
    warmup_rows: int = 0
    nan_values: int = 0
    seconds: float = 0.0

    def as_metadata(self) -> dict:
        return dataclasses.asdict(self)


def features_for_days(warehouse: Warehouse, exchange: str, symbol: str, interval: str, days: list[dt.date],
                      params: FeatureParams = FEATURE_PARAMS) -> dict[dt.date, pd.DataFrame]:
    """Features of the given (contiguous) days, computed in one pass over their candles and warm-up."""
    step = interval_ms(interval)
    start, end = day_bounds_ms(min(days))[0], day_bounds_ms(max(days))[1]
    candles = load_candles(exchange, symbol, interval, start, end, warmup=params.warmup_candles,
                           warehouse=warehouse, strict=False).reset_index(drop=True)
    warmup = int((candles["open_time"] < start).sum())
    features = compute_features(candles, step, params).iloc[warmup:]
    day_of = features["open_time"].to_numpy() // DAY_MS
    return {day: validate_features(features[day_of == day_bounds_ms(day)[0] // DAY_MS].reset_index(drop=True)) for day in days}


def derive_days(warehouse: Warehouse, exchange: str, symbol: str, interval: str, days: list[dt.date],
                params: FeatureParams = FEATURE_PARAMS) -> dict[dt.date, FeatureReport]:
    """Computes and merges features for the days; one report per day."""
    started = time.perf_counter()
    frames = features_for_days(warehouse, exchange, symbol, interval, days, params)
    reports = {}
    for day, frame in frames.items():
        merged = warehouse.merge_partition(candle_features, exchange, symbol, interval, frame, *day_bounds_ms(day), now_ms())
        values = frame.drop(columns=["open_time", "gap_candles", "warmed_up"]).to_numpy()
        reports[day] = FeatureReport(
            rows=len(frame),
            rows_written=merged.inserted + merged.revised,
            warmup_rows=int((~frame["warmed_up"]).sum()),
            nan_values=int(np.isnan(values).sum()),
        )
    elapsed = round(time.perf_counter() - started, 3)
    for report in reports.values():
        report.seconds = elapsed
    return reports
