"""derived_candles table: candles rolled up in the warehouse from a finer stored interval (an
interval a universe declares ``derived``), kept apart from the venues' own candles

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derived_candles",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True, comment="the derived interval, e.g. 4h"),
        sa.Column("source_timeframe", sa.String(8), primary_key=True, comment="the stored interval it is rolled up from, e.g. 1m"),
        sa.Column("open_time", sa.BigInteger, primary_key=True, comment="epoch milliseconds, UTC"),
        sa.Column("open", sa.Float(53), nullable=False),
        sa.Column("high", sa.Float(53), nullable=False),
        sa.Column("low", sa.Float(53), nullable=False),
        sa.Column("close", sa.Float(53), nullable=False),
        sa.Column("volume", sa.Float(53), nullable=False),
        sa.Column("quote_volume", sa.Float(53), nullable=True),
        sa.Column("trades", sa.BigInteger, nullable=True),
        sa.Column("taker_buy_volume", sa.Float(53), nullable=True),
        sa.Column("taker_buy_quote_volume", sa.Float(53), nullable=True),
        sa.Column("vwap", sa.Float(53), nullable=True,
                  comment="volume-weighted over the source candles, where every one has a vwap"),
        sa.Column("source_candles", sa.BigInteger, nullable=False, comment="source candles rolled up (all that exist in the bucket)"),
        sa.Column("derived_at", sa.BigInteger, nullable=False, comment="epoch milliseconds when last derived"),
    )


def downgrade() -> None:
    op.drop_table("derived_candles")
