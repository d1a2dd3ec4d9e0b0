"""day_sources, source_files, source_disagreements: where each stored day came from (archive file
and sha256, or REST), which archive files were ingested, and where sources disagreed

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "day_sources",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True, comment="UTC day, YYYY-MM-DD"),
        sa.Column("source", sa.String(16), nullable=False, comment="archive or rest: where the day's candles were last written from"),
        sa.Column("file", sa.String(500), nullable=True, comment="archive: the file's path below the archive's root"),
        sa.Column("sha256", sa.String(64), nullable=True, comment="archive: the file's sha256"),
        sa.Column("recorded_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "source_files",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("file", sa.String(500), primary_key=True, comment="path below the archive's root"),
        sa.Column("sha256", sa.String(64), nullable=False, comment="of the version last ingested"),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("candles", sa.BigInteger, nullable=False, comment="candles of the asked days it held when last ingested"),
        sa.Column("revisions", sa.Integer, nullable=False,
                  comment="times a version with another sha256 was ingested after the first"),
        sa.Column("first_ingested_ms", sa.BigInteger, nullable=False),
        sa.Column("ingested_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "source_disagreements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("source", sa.String(500), nullable=False, comment="the incoming source: an archive file"),
        sa.Column("other", sa.String(500), nullable=False, comment="what was stored: rest, or an archive file"),
        sa.Column("candles", sa.BigInteger, nullable=False, comment="candles whose values differ"),
        sa.Column("max_diff_pct", sa.Float(53), nullable=False, comment="largest relative difference of a value, in percent"),
        sa.Column("first_open_time", sa.BigInteger, nullable=False, comment="the first differing candle"),
        sa.Column("kept", sa.String(16), nullable=False, comment="archive or stored: whose values the warehouse holds (the rule)"),
        sa.Column("detected_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_disagreements_instrument", "source_disagreements", ["exchange", "symbol", "timeframe", "day"])


def downgrade() -> None:
    op.drop_index("ix_disagreements_instrument", "source_disagreements")
    for table in ("source_disagreements", "source_files", "day_sources"):
        op.drop_table(table)
