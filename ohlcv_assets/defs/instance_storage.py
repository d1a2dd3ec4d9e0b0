"""Dagster's PostgreSQL instance storage, holding its connections open in every process.

``dagster-postgres`` opens a new connection for every statement outside the webserver (its
engines use ``NullPool``). A ranged run logs several events per day (a materialization and its
check evaluations), each two to four statements, so a year of 1m candles opened about 10,000
connections and spent more time connecting than writing candles (profiled: 9 of 26 s for 90 days).
This storage is the same storage with the webserver's pooled engines (one held connection, more
on demand) in every process: run workers, the daemon, Celery workers, the CLI; and its event log
does not ask the catalog for the same table on every event.

Creating a run writes its "planned" events: one per partition of the asset (365 for a year of
one instrument) and, per check, a row per partition. Stock, each planned event is a statement of
its own and each check row serializes the whole event again, its partition subset included (a
year: 1,460 serializations of a 365-key subset): the backfill daemon spent about 6 s creating each
run of a year of 1m candles, one run after the other (profiled). Here a run's planned events are
written as one batch, in one transaction, each serialized once: the same rows as stock.

A running step's check evaluations (4 per partition) were 40 % of a year-long run's step time:
stock, each is serialized twice (the event, then the check's execution row) and written in two
transactions of SQLAlchemy-built statements. Here each is serialized once and written in one
transaction of three fixed statements: the same rows as stock. A step that logs a batch of them as
one event batch (``dagster_internals.log_check_evaluations``; stock refuses such batches and falls
back to one write each) has the batch's events inserted by one statement and their execution rows
updated by one more, in the same transaction.

A pooled connection outlives a server restart: stock, every statement opened a fresh connection
(retried while the server was starting up), so a restart cost nothing; a pool hands out the dead
connection and the statement fails ("server closed the connection unexpectedly"). Here every pooled
connection is tested before use (``pool_pre_ping``, as the warehouse's engine does) and re-opened
if the server went away, and the writes a run cannot do without (its events; its status, which
its end records) are retried until the server is back (``RECONNECT_SECONDS``), so a run that
spans a PostgreSQL restart loses no event and records its own end.

Configured in ``deploy/dagster.yaml`` under ``storage: custom:`` with the same fields as
``storage: postgres:``.
"""

import collections
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa

from dagster import DagsterEventType
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.event_api import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._serdes import serialize_value
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage
from dagster_postgres.event_log.event_log import CHANNEL_NAME
from dagster_postgres.utils import DagsterPostgresException, create_pg_engine, get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 8
RECONNECT_SECONDS = 120  # how long a run's write waits for a restarting server (a fast restart takes seconds)
# Dagster hands planned events to ``store_event_batch`` only when this variable is positive; a
# run's planned events are then one batch up to this many.
EVENT_BATCH_SIZE = 2000
PLANNED_EVENTS = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
_INSERT_EVENT = sa.text(
    "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp, step_key, asset_key, partition) "
    "VALUES (:run_id, :event, :dagster_event_type, :timestamp, :step_key, :asset_key, :partition) RETURNING id")
_NOTIFY = sa.text(f"NOTIFY {CHANNEL_NAME}, :notify_id")
_EXECUTION_VALUES = ("execution_status = :execution_status, evaluation_event = :evaluation_event, "
                     "evaluation_event_timestamp = :evaluation_event_timestamp, evaluation_event_storage_id = :evaluation_event_storage_id, "
                     "materialization_event_storage_id = :materialization_event_storage_id")
_UPDATE_EXECUTION = {  # by partition, or for an unpartitioned check (both use the unique index)
    partitioned: sa.text(f"UPDATE asset_check_executions SET {_EXECUTION_VALUES} WHERE asset_key = :asset_key AND "
                         f"check_name = :check_name AND run_id = :run_id AND partition {'= :partition' if partitioned else 'IS NULL'}")
    for partitioned in (True, False)}
# the same update for many partitioned evaluations at once, each row's values from arrays
_EXECUTION_ARRAYS = {"asset_key": "text", "check_name": "text", "run_id": "text", "partition": "text", "execution_status": "text",
                     "evaluation_event": "text", "evaluation_event_timestamp": "timestamp", "evaluation_event_storage_id": "bigint",
                     "materialization_event_storage_id": "bigint"}
_UPDATE_EXECUTIONS = sa.text(
    "UPDATE asset_check_executions AS e SET execution_status = v.execution_status, evaluation_event = v.evaluation_event, "
    "evaluation_event_timestamp = v.evaluation_event_timestamp, evaluation_event_storage_id = v.evaluation_event_storage_id, "
    "materialization_event_storage_id = v.materialization_event_storage_id "
    f"FROM unnest(CAST(:n AS integer[]), {', '.join(f'CAST(:{name} AS {kind}[])' for name, kind in _EXECUTION_ARRAYS.items())}) "
    f"AS v(n, {', '.join(_EXECUTION_ARRAYS)}) "
    "WHERE e.asset_key = v.asset_key AND e.check_name = v.check_name AND e.run_id = v.run_id AND e.partition = v.partition "
    "RETURNING v.n")
_INSERT_EXECUTION = sa.text(
    "INSERT INTO asset_check_executions (asset_key, check_name, run_id, partition, execution_status, evaluation_event, "
    "evaluation_event_timestamp, evaluation_event_storage_id, materialization_event_storage_id) VALUES (:asset_key, "
    ":check_name, :run_id, :partition, :execution_status, :evaluation_event, :evaluation_event_timestamp, "
    ":evaluation_event_storage_id, :materialization_event_storage_id)")


T = TypeVar("T")
log = logging.getLogger(__name__)


def server_went_away(err: Exception) -> bool:
    """The server closed the connection, or refused new ones (restarting, shutting down): worth
    waiting for. ``DagsterPostgresException`` is dagster-postgres giving up connecting."""
    if isinstance(err, DagsterPostgresException):
        return True
    return isinstance(err, sa.exc.DBAPIError) and (err.connection_invalidated or isinstance(err, sa.exc.OperationalError))


def until_reconnected(write: Callable[[], T], what: str, seconds: float = RECONNECT_SECONDS) -> T:
    """``write()``, again (each time on a connection tested first) while the server is away, for
    up to ``seconds``. Each write retried here is one transaction, or an idempotent update."""
    deadline, delay = time.monotonic() + seconds, 0.25
    while True:
        try:
            return write()
        except (sa.exc.DBAPIError, DagsterPostgresException) as err:
            if not server_went_away(err) or time.monotonic() > deadline:
                raise
            log.warning("the Dagster storage lost its PostgreSQL connection while writing %s; retrying in %.1f s: %s",
                        what, delay, str(err).splitlines()[0])
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def pool_tested_connections(storage) -> None:
    """The storage's engine replaced by a pooled one (one held connection, more on demand) that
    tests each connection before handing it out: the webserver's settings
    (``optimize_for_webserver``) plus ``pool_pre_ping``."""
    kwargs: dict = {"isolation_level": "AUTOCOMMIT", "pool_size": 1, "pool_recycle": POOL_RECYCLE_SECONDS,
                    "max_overflow": MAX_OVERFLOW, "pool_pre_ping": True}
    options = storage._engine.url.query.get("options")
    if options:
        kwargs["connect_args"] = {"options": options}
    old, storage._engine = storage._engine, create_pg_engine(storage.postgres_url, storage._token_provider, **kwargs)
    old.dispose()


class PooledPostgresRunStorage(PostgresRunStorage):
    """Records a run's status changes (started, success, failure) even across a server restart."""

    def handle_run_event(self, run_id, event, update_timestamp=None) -> None:
        until_reconnected(lambda: super(PooledPostgresRunStorage, self).handle_run_event(run_id, event, update_timestamp),
                          f"the status of run {run_id}")


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

    def store_event(self, event: EventLogEntry) -> None:
        until_reconnected(lambda: self._store_event(event), f"a {event.dagster_event_type or 'log'} event")

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        until_reconnected(lambda: self._store_event_batch(events), f"{len(events)} events")

    def _store_event(self, event: EventLogEntry) -> None:
        """A run's check evaluation in one transaction (see the module docstring); anything else as stock."""
        if not (event.is_dagster_event and event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION and event.run_id):
            super().store_event(event)
            return
        row = self._event_to_row(event)
        with self.index_transaction() as conn:
            event_id = conn.execute(_INSERT_EVENT, row).scalar_one()
            conn.execute(_NOTIFY, {"notify_id": f"{event.run_id}_{event_id}"})
            self._store_check_executions(conn, [(event, row, event_id)])

    def _store_check_executions(self, conn: sa.Connection, stored: list[tuple[EventLogEntry, dict, int]]) -> None:
        """Each stored evaluation into its check's execution row (the run's planned row, else a new
        one). A batch's partitioned evaluations update their planned rows in one statement (a ranged
        run's day is four evaluations: a year of 1m was 1,464 statements, now one per batch of days)."""
        executions = []
        for event, row, event_id in stored:
            evaluation = event.get_dagster_event().event_specific_data
            target = evaluation.target_materialization_data
            executions.append({
                "asset_key": evaluation.asset_key.to_string(), "check_name": evaluation.check_name, "run_id": event.run_id,
                "partition": evaluation.partition, "evaluation_event": row["event"], "evaluation_event_timestamp": row["timestamp"],
                "execution_status": (AssetCheckExecutionRecordStatus.SUCCEEDED if evaluation.passed
                                     else AssetCheckExecutionRecordStatus.FAILED).value,
                "evaluation_event_storage_id": event_id, "materialization_event_storage_id": target.storage_id if target else None,
            })
        updated = [0] * len(executions)
        keys = [(e["asset_key"], e["check_name"], e["run_id"], e["partition"]) for e in executions]
        repeated = {key for key, count in collections.Counter(keys).items() if count > 1}  # one after the other, as stock
        batched = [n for n, execution in enumerate(executions) if execution["partition"] is not None and keys[n] not in repeated]
        if len(batched) > 1:
            columns = {name: [executions[n][name] for n in batched] for name in _EXECUTION_ARRAYS}
            for n in conn.execute(_UPDATE_EXECUTIONS, {"n": batched, **columns}).scalars():
                updated[n] += 1
        done = set(batched) if len(batched) > 1 else set()
        for n, execution in enumerate(executions):
            if n not in done:
                updated[n] = conn.execute(_UPDATE_EXECUTION[execution["partition"] is not None], execution).rowcount
            if updated[n] == 0:  # no planned row (stock inserts one too)
                conn.execute(_INSERT_EXECUTION, execution)
            elif updated[n] > 1:
                evaluation = stored[n][0].get_dagster_event().event_specific_data
                raise DagsterInvariantViolationError(
                    f"Updated {updated[n]} rows for asset check evaluation {evaluation.asset_check_key} "
                    "as a result of duplicate AssetCheckPlanned events.")

    def _store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A run's planned events, or a step's batch of check evaluations, in one transaction (see
        the module docstring); other batches as stock."""
        kinds = {event.get_dagster_event().event_type for event in events}
        if kinds == {DagsterEventType.ASSET_CHECK_EVALUATION} and all(event.run_id for event in events):
            rows = [self._event_to_row(event) for event in events]
            with self.index_transaction() as conn:
                event_ids = self._insert_events(conn, rows)
                self._store_check_executions(conn, list(zip(events, rows, event_ids)))
            return
        if not events or not kinds <= PLANNED_EVENTS:
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.index_transaction() as conn:
            event_ids = self._insert_events(conn, rows)
            assets = [(event, event_id) for event, event_id in zip(events, event_ids)
                      if event.get_dagster_event().event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
            if assets:
                self._store_asset_event_tags(conn, [event for event, _ in assets], [event_id for _, event_id in assets])
                latest = {event.get_dagster_event().asset_key: (event, event_id) for event, event_id in assets}
                for event, event_id in latest.values():
                    self._store_asset_event(conn, event, event_id)
            checks = [check for event, row, event_id in zip(events, rows, event_ids)
                      if event.get_dagster_event().event_type == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
                      for check in self._planned_check_rows(event, event_id, row["event"])]
            if checks:
                conn.execute(AssetCheckExecutionsTable.insert(), checks)

    @staticmethod
    def _insert_events(conn: sa.Connection, rows: list[dict]) -> list[int]:
        """The rows in one INSERT (SQLAlchemy's "insertmanyvalues": one cached statement), their ids in the rows' order."""
        statement = SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True)
        return list(conn.execute(statement, rows).scalars())

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), self._planned_check_rows(event, event_id, serialize_value(event)))

    def _planned_check_rows(self, event: EventLogEntry, event_id: int | None, serialized: str) -> list[dict]:
        """The rows of ``SqlEventLogStorage._store_asset_check_evaluation_planned``, all holding the
        event as it was serialized once."""
        planned = event.get_dagster_event().event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        common = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                      execution_status=AssetCheckExecutionRecordStatus.PLANNED.value, evaluation_event=serialized,
                      evaluation_event_timestamp=self._event_insert_timestamp(event), evaluation_event_storage_id=event_id)
        return [{**common, "partition": key} for key in partition_keys]


class PooledPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` with pooled connections (see the module docstring)."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._run_storage = PooledPostgresRunStorage(postgres_url, False, token_provider=token_provider)
        self._event_log_storage = PooledPostgresEventLogStorage(postgres_url, False, token_provider=token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            pool_tested_connections(storage)
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
