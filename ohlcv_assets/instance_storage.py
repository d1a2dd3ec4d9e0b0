"""Dagster's PostgreSQL instance storage, holding its connections open in every process.

``dagster-postgres`` opens a new connection for every statement outside the webserver (its
engines use ``NullPool``). A ranged run logs several events per day (a materialization and its
check evaluations), each two to four statements, so a year of 1m candles opened about 10,000
connections and spent more time connecting than writing candles (profiled: 9 of 26 s for 90 days).
This storage is the same storage with the webserver's pooled engines (one held connection, more
on demand) in every process: run workers, the daemon, Celery workers, the CLI; and its event log
does not ask the catalog for the same table on every event.

Configured in ``deploy/dagster.yaml`` under ``storage: custom:`` with the same fields as
``storage: postgres:``.
"""

import os
import weakref

import sqlalchemy as sa

from dagster._core.storage.config import pg_config
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 8


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """Remembers the tables it found: stock, every check evaluation asks the catalog whether the
    check table exists (a quarter of the statements a ranged run sends). Tables are only ever added."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tables_found: set[str] = set()

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_found.add(table_name)
        return found


class PooledPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` with pooled connections (see the module docstring)."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._event_log_storage = PooledPostgresEventLogStorage(postgres_url, False, token_provider=token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=MAX_OVERFLOW)
        forget_in_forked_child(self)

    @classmethod
    def config_type(cls):
        return pg_config()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(pg_url_from_config(config_value), config_value.get("should_autocreate_tables", True),
                   inst_data=inst_data, token_provider=get_token_provider_from_config(config_value))


def forget_in_forked_child(storage: PooledPostgresStorage) -> None:
    """A forked child (a Celery prefork worker, a forked executor) must not use its parent's
    sockets: it drops the inherited pools without closing them and opens its own."""
    ref = weakref.ref(storage)

    def drop_pools() -> None:
        if (alive := ref()) is not None:
            for part in (alive._run_storage, alive._event_log_storage, alive._schedule_storage):
                part._engine.dispose(close=False)

    os.register_at_fork(after_in_child=drop_pools)


def storage_env(postgres_url: str) -> dict[str, str]:
    """The variables ``deploy/dagster.yaml`` reads Dagster's storage from, for a PostgreSQL URL."""
    url = sa.make_url(postgres_url)
    return {"DAGSTER_PG_USER": url.username, "DAGSTER_PG_PASSWORD": url.password or "unused", "DAGSTER_PG_HOST": url.host,
            "DAGSTER_PG_PORT": str(url.port), "DAGSTER_PG_DB": url.database}
