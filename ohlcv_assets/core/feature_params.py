"""The features' parameters (windows, spans, periods) and the column names derived from them: what
the warehouse's ``candle_features`` table is made of and what ``features.compute`` computes."""

from __future__ import annotations

import dataclasses

from ohlcv_assets.core.sessions import Sessions


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Every indicator parameter, in one place; column names are derived from them."""

    sma_windows: tuple[int, ...] = (20, 50)
    ema_spans: tuple[int, ...] = (12, 26, 50)
    rsi_period: int = 14
    macd: tuple[int, int, int] = (12, 26, 9)
    bollinger: tuple[int, int] = (20, 2)
    atr_period: int = 14
    realized_vol_window: int = 60
    volume_window: int = 20
    warmup_candles: int = 1000

    def columns(self) -> list[str]:
        fast, slow, signal = self.macd
        bb_n, bb_k = self.bollinger
        return [
            "gap_candles", "warmed_up", "return_1", "log_return_1",
            *(f"sma_{n}" for n in self.sma_windows),
            *(f"ema_{n}" for n in self.ema_spans),
            f"rsi_{self.rsi_period}",
            f"macd_{fast}_{slow}_{signal}", f"macd_signal_{fast}_{slow}_{signal}", f"macd_hist_{fast}_{slow}_{signal}",
            f"bb_upper_{bb_n}_{bb_k}", f"bb_middle_{bb_n}_{bb_k}", f"bb_lower_{bb_n}_{bb_k}", f"bb_width_{bb_n}_{bb_k}",
            f"atr_{self.atr_period}", "vwap_day",
            f"realized_vol_{self.realized_vol_window}",
            f"volume_sma_{self.volume_window}", f"volume_z_{self.volume_window}",
        ]

    def lookback_days(self, step_ms: int, sessions: Sessions | None = None) -> int:
        """Whole days of candles that may hold a day's warm-up: more for a venue that trades in
        sessions (1,000 1m candles of NYSE span up to 7 calendar days)."""
        return (sessions or Sessions()).lookback_days(self.warmup_candles, step_ms)


FEATURE_PARAMS = FeatureParams()
