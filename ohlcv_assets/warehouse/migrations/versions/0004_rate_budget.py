"""rate_budget table: each exchange's request budget, shared by all run processes

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budget",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("tat", sa.Float(53), nullable=False,
                  comment="GCRA theoretical arrival time (epoch seconds) of the exchange's shared request budget"),
    )


def downgrade() -> None:
    op.drop_table("rate_budget")
