"""funding_rates table: a perpetual's funding rate settlements, keyed as candles are (timeframe
"funding", open_time the nominal settlement time), with the venue's own time, the rate and the mark
price of each

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "funding_rates",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("open_time", sa.BigInteger, primary_key=True, comment="the settlement's nominal time (on the hour), epoch ms"),
        sa.Column("raw_time", sa.BigInteger, nullable=False, comment="the venue's own settlement time (Binance: a few ms after the hour)"),
        sa.Column("rate", sa.Float(53), nullable=False, comment="the funding rate paid at the settlement (signed)"),
        sa.Column("mark_price", sa.Float(53), nullable=True, comment="the mark price of the settlement, where the venue gives it"),
        sa.Column("fetched_at", sa.BigInteger, nullable=False),
        comment="A perpetual's funding rate settlements, one row each, keyed by the nominal settlement time (warehouse/funding.py)",
    )


def downgrade() -> None:
    op.drop_table("funding_rates")
