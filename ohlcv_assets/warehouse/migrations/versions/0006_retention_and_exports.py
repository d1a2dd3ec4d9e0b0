"""retired_ranges (what retention dropped) and exported_files (what the export wrote)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retired_ranges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False, comment="first open time of the dropped span"),
        sa.Column("end_ms", sa.BigInteger, nullable=False, comment="exclusive end of the dropped span"),
        sa.Column("candles", sa.BigInteger, nullable=False, comment="candles of this instrument dropped"),
        sa.Column("retired_ms", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.String(500), nullable=False,
                  comment="partition dropped (PostgreSQL) or rows deleted (SQLite); aggregates checked"),
    )
    op.create_index("ix_retired_instrument", "retired_ranges", ["exchange", "symbol", "timeframe"])
    op.create_table(
        "exported_files",
        sa.Column("format", sa.String(16), primary_key=True),
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True, comment="YYYY-MM, or '' for a whole-history file"),
        sa.Column("path", sa.String(1000), nullable=False, comment="relative to the export directory"),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("max_fetched_at", sa.BigInteger, nullable=False, comment="with rows, tells whether the candles changed since"),
        sa.Column("written_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exported_files")
    op.drop_index("ix_retired_instrument", "retired_ranges")
    op.drop_table("retired_ranges")
