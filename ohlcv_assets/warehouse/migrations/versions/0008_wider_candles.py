"""candles: the columns venues give beyond OHLCV (quote volume, trades, taker-buy volumes, VWAP),
NULL for the candles stored before and for venues that do not give them

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = [
    ("quote_volume", sa.Float(53), "volume in the quote currency (Binance)"),
    ("trades", sa.BigInteger, "number of trades (Binance, Kraken, Polygon)"),
    ("taker_buy_volume", sa.Float(53), "base volume bought by takers (Binance)"),
    ("taker_buy_quote_volume", sa.Float(53), "quote volume bought by takers (Binance)"),
    ("vwap", sa.Float(53), "volume-weighted average price (Kraken, Polygon)"),
]


def upgrade() -> None:
    for name, kind, comment in COLUMNS:  # nullable, no default: instant on PostgreSQL, partitions included
        op.add_column("candles", sa.Column(name, kind, nullable=True, comment=comment))


def downgrade() -> None:
    for name, _, _ in reversed(COLUMNS):
        op.drop_column("candles", name)
