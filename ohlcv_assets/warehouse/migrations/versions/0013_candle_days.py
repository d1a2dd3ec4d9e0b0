"""candle_days table: per instrument, interval and UTC day, the candles stored (count, first and
last open time), filled here from the candles and kept by the warehouse's writes and deletes, so
``ohlcv-status`` and the metrics exporter never count every candle

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candle_days",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("day_ms", sa.BigInteger, primary_key=True, comment="the UTC day's start, epoch milliseconds"),
        sa.Column("candles", sa.BigInteger, nullable=False, comment="candles stored that open in the day"),
        sa.Column("first_open", sa.BigInteger, nullable=False, comment="open time of the day's first stored candle"),
        sa.Column("last_open", sa.BigInteger, nullable=False, comment="open time of the day's last stored candle"),
        comment="Per instrument, interval and UTC day, the candles stored: kept by every write and delete of candles "
                "(warehouse/candle_days.py), so counts never need a scan of the candles",
    )
    op.execute(
        "INSERT INTO candle_days (exchange, symbol, timeframe, day_ms, candles, first_open, last_open) "
        "SELECT exchange, symbol, timeframe, open_time - open_time % 86400000, count(*), min(open_time), max(open_time) "
        "FROM candles GROUP BY exchange, symbol, timeframe, open_time - open_time % 86400000")


def downgrade() -> None:
    op.drop_table("candle_days")
