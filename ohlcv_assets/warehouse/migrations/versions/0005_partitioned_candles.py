"""candles and candle_features partitioned by interval and time (PostgreSQL; SQLite unchanged)

Converts populated tables in place: the plain table is renamed, the partitioned one created with
the same columns and key, partitions made for every span holding rows, every row copied, the
counts compared (the migration fails and rolls back on any difference) and the plain table
dropped. The whole conversion is one transaction: a failure leaves the plain table as it was.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from ohlcv_assets.warehouse.partitioning import PARTITIONED_TABLES, ensure_partitions, is_partitioned

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _convert(connection: sa.Connection, table: str) -> None:
    if is_partitioned(connection, table):
        return
    plain = f"{table}_plain"
    connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {plain}")
    connection.exec_driver_sql(f"ALTER TABLE {plain} RENAME CONSTRAINT {table}_pkey TO {plain}_pkey")
    connection.exec_driver_sql(
        f"CREATE TABLE {table} (LIKE {plain} INCLUDING DEFAULTS INCLUDING COMMENTS) PARTITION BY LIST (timeframe)")
    connection.exec_driver_sql(f"ALTER TABLE {table} ADD PRIMARY KEY (exchange, symbol, timeframe, open_time)")
    ranges = connection.exec_driver_sql(
        f"SELECT timeframe, min(open_time), max(open_time) FROM {plain} GROUP BY timeframe").all()
    for interval, first, last in ranges:
        ensure_partitions(connection, table, interval, first, last + 1)
    copied = connection.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {plain}").rowcount
    before = connection.exec_driver_sql(f"SELECT count(*) FROM {plain}").scalar()
    after = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
    if not before == after == copied:
        raise RuntimeError(f"{table}: {before} rows before partitioning, {after} after ({copied} copied); rolled back")
    connection.exec_driver_sql(f"DROP TABLE {plain}")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    for table in PARTITIONED_TABLES:
        _convert(connection, table)


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    for table in PARTITIONED_TABLES:
        plain = f"{table}_plain"
        connection.exec_driver_sql(f"CREATE TABLE {plain} (LIKE {table} INCLUDING DEFAULTS INCLUDING COMMENTS)")
        connection.exec_driver_sql(f"ALTER TABLE {plain} ADD PRIMARY KEY (exchange, symbol, timeframe, open_time)")
        connection.exec_driver_sql(f"INSERT INTO {plain} SELECT * FROM {table}")
        connection.exec_driver_sql(f"DROP TABLE {table}")
        connection.exec_driver_sql(f"ALTER TABLE {plain} RENAME TO {table}")
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME CONSTRAINT {plain}_pkey TO {table}_pkey")
