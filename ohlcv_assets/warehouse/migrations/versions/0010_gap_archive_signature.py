"""gaps.archive_signature: the archive configuration a gap was last tried with, so that a gap given
up is tried again once that configuration changes (a quarterly zip added, another mirror)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for the gaps recorded before: the next scan adopts the current setting without a retry
    op.add_column("gaps", sa.Column("archive_signature", sa.String(64), nullable=True,
                                    comment="fingerprint of the venue's archive setting when last tried; '' without one"))


def downgrade() -> None:
    op.drop_column("gaps", "archive_signature")
