"""ohlcv_create_partition() and ohlcv_drop_partition(): the one way partitions are created and
dropped (retention) from here on, SECURITY DEFINER functions owned by the warehouse's owner, so that
the ingest role (no DDL) can create the interval tables and range partitions it writes into, and
retire a month or year of candles (rows it may delete anyway), without being able to create, alter
or drop any table (docs/security.md). The names come from ohlcv_assets.warehouse.partitioning; the
functions only check that the parent is one of the partitioned tables (or one of their interval
tables), that a new child is named after it, and that a dropped table is a time partition of the
candle tables. EXECUTE is granted to the ingest role by ohlcv-db-setup.

Revision ID: 0014
Revises: 0012
"""

from alembic import op

revision = "0014"
down_revision = "0013"
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
DROP_FUNCTION = """
CREATE OR REPLACE FUNCTION ohlcv_drop_partition(child text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF child !~ '^[a-z0-9_]{1,63}$' THEN
        RAISE EXCEPTION 'ohlcv_drop_partition: % is not a partition name', child;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relname = child AND n.nspname = 'public') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (
            SELECT 1 FROM pg_inherits i1 JOIN pg_class c ON c.oid = i1.inhrelid
            JOIN pg_inherits i2 ON i2.inhrelid = i1.inhparent JOIN pg_class root ON root.oid = i2.inhparent
            WHERE c.relname = child AND root.relname IN ('candles', 'candle_features')) THEN
        RAISE EXCEPTION 'ohlcv_drop_partition: % is not a time partition of the candle tables', child;
    END IF;
    EXECUTE format('DROP TABLE %I', child);
END
$fn$
"""
SIGNATURES = ("ohlcv_create_partition(text, text, text, bigint, bigint)", "ohlcv_drop_partition(text)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(DROP_FUNCTION)
    for signature in SIGNATURES:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in SIGNATURES:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
