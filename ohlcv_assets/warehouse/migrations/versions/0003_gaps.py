"""gaps table: every missing-candle run found, why, and what was done about it

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False, comment="open time of the first missing candle"),
        sa.Column("end_ms", sa.BigInteger, nullable=False, comment="exclusive end: open time after the last missing candle"),
        sa.Column("candles", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False, comment="fillable, exchange_downtime, before_listing, beyond_history"),
        sa.Column("status", sa.String(32), nullable=False,
                  comment="detected, backfill_requested, filled, superseded, confirmed_empty, unfillable"),
        sa.Column("request_id", sa.String(64), nullable=True, comment="tag ohlcv/gap_request of the backfill asked for it"),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=True),
        sa.Column("detected_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
    )
    op.create_index("ix_gaps_instrument", "gaps", ["exchange", "symbol", "timeframe", "status"])


def downgrade() -> None:
    op.drop_index("ix_gaps_instrument", "gaps")
    op.drop_table("gaps")
