"""day_sources.candles, kept_from, kept_candles: how a day's candles split between the source it was
written from and the stored source whose values some candles kept (a mixed day, "archive+rest");
source_files keyed by (exchange, file, symbol, timeframe): one zip serving several instruments or
intervals (Kraken's) keeps a record for each, not the last one written

The rows source_files held are kept (each was one file's record for the instrument and interval it
names). The table is rebuilt (copy, drop, rename), which SQLite needs to change a primary key; on
PostgreSQL the whole upgrade is one transaction.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("exchange", "file", "sha256", "symbol", "timeframe", "candles", "revisions", "first_ingested_ms", "ingested_ms")


def _source_files(name: str, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("file", sa.String(500), nullable=False, comment="path below the archive's root"),
        sa.Column("sha256", sa.String(64), nullable=False, comment="of the version last ingested"),
        sa.Column("symbol", sa.String(64), nullable=False, comment="one record per instrument and interval the file served"),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("candles", sa.BigInteger, nullable=False, comment="candles of the asked days it held when last ingested"),
        sa.Column("revisions", sa.Integer, nullable=False,
                  comment="times a version with another sha256 was ingested after the first"),
        sa.Column("first_ingested_ms", sa.BigInteger, nullable=False),
        sa.Column("ingested_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*key, name=f"{name}_pkey"),
    )


def _rekey(key: tuple[str, ...]) -> None:
    _source_files("source_files_rekeyed", key)
    columns = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO source_files_rekeyed ({columns}) SELECT {columns} FROM source_files")
    op.drop_table("source_files")
    op.rename_table("source_files_rekeyed", "source_files")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE source_files RENAME CONSTRAINT source_files_rekeyed_pkey TO source_files_pkey")


def upgrade() -> None:
    op.add_column("day_sources", sa.Column("candles", sa.BigInteger, nullable=True,
                                           comment="the day's candles holding the values of source (file); NULL: before 0011"))
    op.add_column("day_sources", sa.Column("kept_from", sa.String(500), nullable=True,
                                           comment="a mixed day: rest, or an archive file, whose stored values some candles "
                                                   "kept (the file disagreed)"))
    op.add_column("day_sources", sa.Column("kept_candles", sa.BigInteger, nullable=False, server_default="0",
                                           comment="a mixed day: candles holding kept_from's values"))
    _rekey(("exchange", "file", "symbol", "timeframe"))


def downgrade() -> None:
    # one record per file again: the most recently ingested of each file's records is kept
    op.execute("DELETE FROM source_files WHERE EXISTS (SELECT 1 FROM source_files AS newer WHERE newer.exchange = "
               "source_files.exchange AND newer.file = source_files.file AND (newer.ingested_ms > source_files.ingested_ms "
               "OR (newer.ingested_ms = source_files.ingested_ms AND newer.symbol || newer.timeframe > "
               "source_files.symbol || source_files.timeframe)))")
    _rekey(("exchange", "file"))
    for column in ("kept_candles", "kept_from", "candles"):
        with op.batch_alter_table("day_sources") as batch:
            batch.drop_column(column)
