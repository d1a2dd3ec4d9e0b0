"""ohlcv_create_partition(): the one way partitions are created from here on, a SECURITY DEFINER
function owned by the warehouse's owner, so that the ingest role (no DDL) can create the interval
tables and range partitions it writes into without being able to create, alter or drop anything
else (docs/security.md). The names come from ohlcv_assets.warehouse.partitioning; the function only
checks that the parent is one of the partitioned tables (or one of their interval tables) and that
the child is named after it. EXECUTE is granted to the ingest role by ohlcv-db-setup.

Revision ID: 0014
Revises: 0012
"""

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION ohlcv_create_partition(parent text, child text, list_value text, range_start bigint, range_end bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF NOT (parent IN ('candles', 'candle_features') OR EXISTS (
            SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE c.relname = parent AND p.relname IN ('candles', 'candle_features'))) THEN
        RAISE EXCEPTION 'ohlcv_create_partition: % is not a partitioned candle table', parent;
    END IF;
    IF child !~ '^[a-z0-9_]{1,63}$' OR left(child, length(parent) + 1) <> parent || '_' THEN
        RAISE EXCEPTION 'ohlcv_create_partition: % is not a partition name of %', child, parent;
    END IF;
    IF list_value IS NOT NULL THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES IN (%L) PARTITION BY RANGE (open_time)',
                       child, parent, list_value);
    ELSE
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                       child, parent, range_start, range_end);
    END IF;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION ohlcv_create_partition(text, text, text, bigint, bigint) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ohlcv_create_partition(text, text, text, bigint, bigint)")
