"""candle_features table

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FEATURES = [
    "return_1", "log_return_1", "sma_20", "sma_50", "ema_12", "ema_26", "ema_50", "rsi_14",
    "macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9",
    "bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2", "bb_width_20_2",
    "atr_14", "vwap_day", "realized_vol_60", "volume_sma_20", "volume_z_20",
]


def upgrade() -> None:
    op.create_table(
        "candle_features",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("open_time", sa.BigInteger, primary_key=True, comment="epoch milliseconds, UTC"),
        sa.Column("gap_candles", sa.BigInteger, nullable=False, comment="grid candles missing just before this one"),
        sa.Column("warmed_up", sa.Boolean, nullable=False, comment="at least warmup_candles stored candles precede it"),
        *(sa.Column(name, sa.Float(53), nullable=True) for name in FEATURES),
        sa.Column("fetched_at", sa.BigInteger, nullable=False, comment="epoch milliseconds when last written"),
    )


def downgrade() -> None:
    op.drop_table("candle_features")
