"""Bringing a warehouse's schema to the newest migration (Alembic, in ``migrations/``), and
reading which migration it is at."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from ohlcv_assets.core.errors import ConfigurationError
from ohlcv_assets.warehouse.dialect import Dialect
from ohlcv_assets.warehouse.urls import public_url

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0017"  # the newest migration (a test holds it to Alembic's head)
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"


def migrate(engine: sa.Engine, dialect: Dialect, revision: str = "head") -> None:
    """Brings the schema to the newest migration (or to ``revision``, for upgrade tests and
    benchmarks of an older schema); safe to call from concurrent runs. A schema already at the
    head costs one query: every run process migrates, and Alembic's import alone is 0.3 s."""
    current = schema_revision(engine)
    if revision == "head" and current == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            dialect.lock_migrations(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except sa.exc.ProgrammingError as err:
        if getattr(err.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        # the ingest role (no DDL) meets a schema older than this code: only the owner migrates
        raise ConfigurationError(
            f"the warehouse at {public_url(engine.url.render_as_string(hide_password=False))} is at schema revision "
            f"{current}, this code needs {HEAD_REVISION}, and this role may not change the schema: run the migration "
            "as the warehouse's owner (ohlcv-db-setup, or OHLCV_OWNER_URL; see docs/security.md)") from None


def schema_revision(engine: sa.Engine) -> str | None:
    """The migration the schema is at (None before the first)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
