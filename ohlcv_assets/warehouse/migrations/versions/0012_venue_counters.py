"""venue_counters table: request, rate-limit and error counts and candles written per venue and
egress address, added by the ingest path at each batch commit (the exporter's durable counters)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "venue_counters",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("egress", sa.String(64), primary_key=True,
                  comment="the egress address requests left from; '' for the system's choice"),
        sa.Column("requests", sa.BigInteger, nullable=False, comment="requests sent, retries included"),
        sa.Column("retries", sa.BigInteger, nullable=False),
        sa.Column("http_429", sa.BigInteger, nullable=False,
                  comment="rate-limit answers (HTTP 429 or the venue's own rate-limit error)"),
        sa.Column("http_418", sa.BigInteger, nullable=False, comment="bans (HTTP 418)"),
        sa.Column("http_5xx", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False,
                  comment="requests that got no usable answer (any failure above, timeouts, bad bodies)"),
        sa.Column("waited_seconds", sa.Float(53), nullable=False,
                  comment="time spent waiting before retries (backoff and Retry-After)"),
        sa.Column("candles_written", sa.BigInteger, nullable=False,
                  comment="candles merged into the warehouse (REST and archive)"),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        comment="Counters of the ingest path per venue and egress address, added at every batch commit: they survive restarts",
    )


def downgrade() -> None:
    op.drop_table("venue_counters")
