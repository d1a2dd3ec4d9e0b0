"""Least-privilege PostgreSQL roles for a shared host (docs/security.md), created and kept up to date
by ``ohlcv-db-setup``, idempotently (run it at every deploy; a changed password is set again):

- **owner** owns the warehouse database and its tables, and alone runs the migrations (DDL);
- **ingest** (the code location, its runs, the daemon) reads and writes rows, creates the
  partitions it writes into and drops the time partitions retention retires, through
  ``ohlcv_create_partition`` and ``ohlcv_drop_partition`` (migration 0014, SECURITY DEFINER
  functions of the owner); it cannot create, alter, truncate or drop a table itself;
- **reader** (``load_candles``, exports, the metrics exporter, dashboards) reads every table and
  writes only the export's own bookkeeping (``exported_files``: which files it wrote);
- **dagster** owns Dagster's own storage, a database of its own the other roles cannot connect to.

No Dagster here; the admin URL (a superuser, or a role with CREATEROLE and CREATEDB) is used only
to create the roles and databases. Passwords are never logged or shown (URLs are shown through
``public_url``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import sqlalchemy as sa

from ohlcv_assets.warehouse.partitioning import CREATE_PARTITION_FUNCTION, DROP_PARTITION_FUNCTION
from ohlcv_assets.warehouse.schema import exported_files
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import normalise_url

OWNER, INGEST, READER, DAGSTER = "owner", "ingest", "reader", "dagster"
ROLES = (OWNER, INGEST, READER, DAGSTER)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Role and database names (the defaults are what docker-compose.yml uses; tests pick unique ones)."""

    owner: str = "ohlcv_owner"
    ingest: str = "ohlcv_ingest"
    reader: str = "ohlcv_reader"
    dagster: str = "dagster"
    warehouse_db: str = "warehouse"
    dagster_db: str = "dagster"

    def role(self, kind: str) -> str:
        return getattr(self, kind)


def _quote(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _set_role(connection: sa.Connection, name: str, password: str) -> None:
    """CREATE ROLE or ALTER ROLE with the password, as a bound literal the driver quotes (never logged)."""
    from psycopg import sql

    exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first()
    verb = "ALTER" if exists else "CREATE"
    statement = sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(password))
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(statement)


def _ensure_database(connection: sa.Connection, name: str, owner: str) -> None:
    if connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first():
        connection.exec_driver_sql(f"ALTER DATABASE {_quote(connection, name)} OWNER TO {_quote(connection, owner)}")
    else:
        connection.exec_driver_sql(f"CREATE DATABASE {_quote(connection, name)} OWNER {_quote(connection, owner)}")
    connection.exec_driver_sql(f"REVOKE ALL ON DATABASE {_quote(connection, name)} FROM PUBLIC")


def role_url(admin_url: str, layout: Layout, kind: str, password: str) -> str:
    """The URL ``kind`` connects with: the admin URL's host and port, the role's name and password,
    its database."""
    database = layout.dagster_db if kind == DAGSTER else layout.warehouse_db
    return (sa.make_url(normalise_url(admin_url)).set(username=layout.role(kind), password=password, database=database)
            .render_as_string(hide_password=False))


def setup_database(admin_url: str, passwords: Mapping[str, str], layout: Layout = Layout()) -> dict[str, str]:
    """Creates (or brings up to date) the four roles with their passwords, the warehouse and Dagster
    databases, migrates the warehouse as its owner and grants each role its privileges; returns
    each role's URL. Safe to run again (the deploy does at every start)."""
    missing = [kind for kind in ROLES if not passwords.get(kind)]
    if missing:
        raise ValueError(f"no password for the role(s) {', '.join(missing)}")
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for kind in ROLES:
                _set_role(connection, layout.role(kind), passwords[kind])
            _ensure_database(connection, layout.warehouse_db, layout.owner)
            _ensure_database(connection, layout.dagster_db, layout.dagster)
            q = lambda name: _quote(connection, name)  # noqa: E731
            connection.exec_driver_sql(f"GRANT CONNECT, TEMPORARY ON DATABASE {q(layout.warehouse_db)} "
                                       f"TO {q(layout.ingest)}, {q(layout.reader)}")
        for database, owner in ((layout.warehouse_db, layout.owner), (layout.dagster_db, layout.dagster)):
            engine = sa.create_engine(sa.make_url(normalise_url(admin_url)).set(database=database), isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    # nobody but the database's owner creates objects in it
                    connection.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {_quote(connection, owner)}")
                    connection.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            finally:
                engine.dispose()
    finally:
        admin.dispose()

    urls = {kind: role_url(admin_url, layout, kind, passwords[kind]) for kind in ROLES}
    warehouse = Warehouse(urls[OWNER])
    try:
        warehouse.migrate()
        with warehouse.engine.begin() as connection:
            grant_privileges(connection, layout)
    finally:
        warehouse.dispose()
    return urls


def grant_privileges(connection: sa.Connection, layout: Layout) -> None:
    """As the owner: the ingest and reader roles' privileges on what exists and on what the owner
    creates later (new migrations' tables, new partitions)."""
    q = lambda name: _quote(connection, name)  # noqa: E731
    owner, ingest, reader = q(layout.owner), q(layout.ingest), q(layout.reader)
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {ingest}, {reader}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ingest}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ingest}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}",
        f"GRANT INSERT, DELETE ON {exported_files.name} TO {reader}",
        f"GRANT EXECUTE ON FUNCTION {CREATE_PARTITION_FUNCTION}, {DROP_PARTITION_FUNCTION} TO {ingest}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ingest}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {ingest}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
    ):
        connection.exec_driver_sql(statement)
