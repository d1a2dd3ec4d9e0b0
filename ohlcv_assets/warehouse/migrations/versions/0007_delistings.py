"""delistings: instruments a venue stopped trading, so that nothing expects new candles from them

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delistings",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("delisted_ms", sa.BigInteger, nullable=False,
                  comment="no candle opens from then on (the end of the last one served)"),
        sa.Column("served", sa.Boolean, nullable=False,
                  comment="the venue still serves its history (listed, inactive); false: gone from its markets"),
        sa.Column("detected_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delistings")
