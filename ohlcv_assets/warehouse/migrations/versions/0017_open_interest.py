"""open_interest table: a perpetual's open interest at the venue's resolution (5 minutes), keyed as
candles are (timeframe "oi_5m", open_time the sample's time), in contracts and in the quote currency

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_interest",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("open_time", sa.BigInteger, primary_key=True, comment="the sample's time (on the 5-minute grid), epoch ms"),
        sa.Column("amount", sa.Float(53), nullable=True, comment="open interest in contracts (the base asset); NULL where not given"),
        sa.Column("value", sa.Float(53), nullable=True, comment="open interest in the quote currency; NULL where not given"),
        sa.Column("fetched_at", sa.BigInteger, nullable=False),
        comment="A perpetual's open interest every 5 minutes (warehouse/open_interest.py)",
    )


def downgrade() -> None:
    op.drop_table("open_interest")
