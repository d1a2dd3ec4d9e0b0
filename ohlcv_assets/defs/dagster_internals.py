"""The few Dagster internals the project relies on, in one place (``test_dagster_internals.py``
pins them, so an upgrade that moves them fails there, not in a sensor at 3 a.m.).

- A sensor launches a backfill (and so the assets' multi-run backfill policy) by returning a
  RunRequest over an AssetGraphSubset, as Dagster's own automation sensors do; there is no public
  constructor for that subset yet.
- Backfills are looked up by tag and status, and their target partitions read, through the
  internal backfill types.
- A check evaluation logged per partition by a ranged run names the materialization it checked,
  so that Dagster's per-partition check state counts it as current. A gap scan's step logs the
  candles' check evaluations too (a day whose missing candles it confirmed, checked again): the
  storage records an evaluation without a planned row as a new execution of the check.
- A step that calls several venues holds each venue's concurrency pool only while it calls it:
  slots are claimed at runtime through the executor's own claim loop (``InstanceConcurrencyContext``),
  under the step key plus the pool name, so the UI's pool page shows them and a finished run's
  slots are freed by the daemon like any step's.
- Reading the check state of a dynamically partitioned asset asks the instance, per stored check
  record, whether its instrument is still registered (one query each) unless the loading context
  holds Dagster's caching partitions loader: one query per instrument instead.
- Which partitions' checks fail is read from the storage's per-partition check records
  (``get_asset_check_partition_info``) in one pass, resolved as Dagster's check state resolves them:
  ``get_asset_check_state`` folds the records into partition subsets one union at a time, which
  costs O(partitions²) per call (a third of the code server's core in sensors at 73,000 partitions).
  The records are read incrementally (``after_storage_id``, as Dagster's own check state does), so a
  sensor tick reads what changed since the last one, not every partition's records.
- A ranged run logs each batch of days' materializations, then their check evaluations, as event
  batches (Dagster's ``DagsterEventBatchMetadata``, which it uses for a multi-partition output's
  materializations): with ``DAGSTER_EVENT_BATCH_SIZE`` set, as the PostgreSQL instance storage sets
  it, a batch is one write instead of one per event. A failed blocking check is yielded instead, so
  that Dagster fails the step at its end as it does for any.
- A step that fails for a reason no retry can heal tells run retries (``run_retries`` in
  dagster.yaml) not to relaunch its run: Dagster decides when the run's failure is stored, from the
  run's tags, and a step failure is not retried when ``dagster/retry_on_asset_or_op_failure`` is
  false, so the step sets that tag on its own run before it fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Iterable, Iterator

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, DagsterEventType, generate_event_batch_id
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus, PartitionBackfill
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.instance.types import CachingDynamicPartitionsLoader
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import RETRY_ON_ASSET_OR_OP_FAILURE_TAG
from dagster_shared.check import CheckError

from ohlcv_assets.core.names import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

BACKFILL_RUNNING = frozenset({BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING})
BACKFILL_SUCCEEDED = BulkActionStatus.COMPLETED_SUCCESS
RUN_NOT_FINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED]


def cached_partitions(instance: dg.DagsterInstance) -> contextlib.AbstractContextManager:
    """A partition loading context that asks the instance once per dynamic partition key."""
    return dg.partition_loading_context(dynamic_partitions_store=CachingDynamicPartitionsLoader(instance))


FULL_READ_SECONDS = 600  # a record committed out of id order and missed is picked up within this
RE_READ_IDS = 10_000  # each incremental read starts this many event ids before the last mark


@dataclasses.dataclass
class _CheckRecords:
    """Per (check, partition) the latest check record that fails or may still fail (planned), as of
    event id ``mark``."""

    mark: int | None = None
    full_read_at: float = 0.0
    candidates: dict = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


_CHECK_RECORDS: dict[tuple, _CheckRecords] = {}
_CHECK_RECORDS_LOCK = threading.Lock()


def _storage_identity(instance: dg.DagsterInstance):
    try:
        return instance.get_ref().event_storage_data
    except Exception:  # an ephemeral instance has no ref
        return id(instance.event_log_storage)


def _failing_candidates(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey]) -> list:
    """The check records that may be failing, read incrementally: a sensor asks every tick, and reading
    every partition's records each time grows with history (a third of a minute per tick at 120 of 200
    instrument-years). Only records written since the last read (and ``RE_READ_IDS`` before it) are
    read, as Dagster's own check state reads them, and nothing while no event was written; everything
    again every ``FULL_READ_SECONDS``, and whenever the event log's ids went back (a wiped instance)."""
    with _CHECK_RECORDS_LOCK:
        state = _CHECK_RECORDS.setdefault((_storage_identity(instance), tuple(sorted(check_keys, key=str))), _CheckRecords())
    storage = instance.event_log_storage
    with state.lock:
        mark, now = storage.get_maximum_record_id() or 0, time.monotonic()
        full = state.mark is None or mark < state.mark or now - state.full_read_at > FULL_READ_SECONDS
        if not full and mark == state.mark:
            return list(state.candidates.values())  # no event since the last read
        infos = storage.get_asset_check_partition_info(check_keys, after_storage_id=None if full else max(state.mark - RE_READ_IDS, 0))
        if full:
            state.candidates, state.full_read_at = {}, now
        for info in infos:
            status = info.latest_execution_status
            if status == AssetCheckExecutionRecordStatus.PLANNED or (status == AssetCheckExecutionRecordStatus.FAILED and info.is_current):
                state.candidates[(info.check_key, info.partition_key)] = info
            else:
                state.candidates.pop((info.check_key, info.partition_key), None)
        state.mark = mark
        return list(state.candidates.values())


def failing_check_partitions(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey],
                             partitions_def: dg.PartitionsDefinition) -> dict[dg.AssetCheckKey, list[str]]:
    """Per check, the partitions (still defined) whose latest evaluation of their latest
    materialization failed, or whose planned evaluation's run failed: what Dagster's check state
    calls FAILED and EXECUTION_FAILED."""
    infos = _failing_candidates(instance, check_keys)
    planned_runs = {i.latest_planned_run_id for i in infos if i.latest_execution_status == AssetCheckExecutionRecordStatus.PLANNED}
    failed_runs = {r.run_id for r in instance.get_runs(dg.RunsFilter(run_ids=list(planned_runs), statuses=[dg.DagsterRunStatus.FAILURE]))
                   } if planned_runs else set()
    failing: dict[dg.AssetCheckKey, list[str]] = {}
    defined = _defined_partition(partitions_def)
    with cached_partitions(instance):
        for info in infos:
            status = info.latest_execution_status
            if not ((status == AssetCheckExecutionRecordStatus.FAILED and info.is_current)
                    or (status == AssetCheckExecutionRecordStatus.PLANNED and info.latest_planned_run_id in failed_runs)):
                continue
            if info.partition_key is not None and defined(info.partition_key):
                failing.setdefault(info.check_key, []).append(info.partition_key)
    return {key: sorted(keys) for key, keys in failing.items()}


def _defined_partition(partitions_def: dg.PartitionsDefinition):
    """``partitions_def.has_partition_key``, asked once per day and once per instrument of a
    multi-partition key instead of once per key (tens of thousands of failing days at scale)."""
    if not isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return partitions_def.has_partition_key
    dimensions = {d.name: d.partitions_def for d in partitions_def.partitions_defs}
    known: dict[tuple[str, str], bool] = {}

    def defined(key: str) -> bool:
        try:
            parts = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        except CheckError:  # not a key of this definition's shape
            return False
        for name, part in parts.items():
            if (name, part) not in known:
                known[(name, part)] = dimensions[name].has_partition_key(part)
            if not known[(name, part)]:
                return False
        return True

    return defined


def backfill_run_request(asset_key: dg.AssetKey, partition_keys: Iterable[str], asset_graph, tags: dict[str, str]) -> dg.RunRequest:
    """A RunRequest that the daemon turns into one backfill of these partitions of one asset."""
    subset = AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(asset_key, key) for key in partition_keys}, asset_graph)
    return dg.RunRequest.for_asset_graph_subset(subset, tags=tags)


def backfills_tagged(instance: dg.DagsterInstance, tags: dict[str, str]) -> list[PartitionBackfill]:
    return list(instance.get_backfills(filters=BulkActionsFilter(tags=tags)))


def backfill_state(backfill: PartitionBackfill) -> tuple[bool, bool, str]:
    """(still running, succeeded, status name)."""
    return backfill.status in BACKFILL_RUNNING, backfill.status == BACKFILL_SUCCEEDED, backfill.status.value


def partitions_in_flight(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                         partitions_def: dg.PartitionsDefinition) -> set[str]:
    """Partitions of an asset that a running backfill or a run not yet finished will write: what a
    user, a schedule or an earlier tick already asked for is not asked for again."""
    keys: set[str] = set()
    for backfill in instance.get_backfills(filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])):
        data = backfill.asset_backfill_data
        if data is not None:
            keys.update(str(p.partition_key) for p in data.target_subset.iterate_asset_partitions()
                        if p.asset_key == asset_key and p.partition_key is not None)
        elif backfill.partition_names:
            keys.update(backfill.partition_names)
    with cached_partitions(instance):
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=RUN_NOT_FINISHED)):
            if run.asset_selection is not None and asset_key not in run.asset_selection:
                continue
            # a job's run may name no asset selection: its partition tags then say whose partitions they are
            # (a gap scan's range is of instrument keys, which are not keys of the candles' partitions)
            if PARTITION_TAG in run.tags:
                if partitions_def.has_partition_key(run.tags[PARTITION_TAG]):
                    keys.add(run.tags[PARTITION_TAG])
            elif RANGE_START_TAG in run.tags and RANGE_END_TAG in run.tags:
                first, last = run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]
                if partitions_def.has_partition_key(first) and partitions_def.has_partition_key(last):
                    keys.update(partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(first, last)))
    return keys


def latest_materializations(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition (one query)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=max(1, len(partitions))).records
    out: dict[str, dg.EventLogRecord] = {}
    for record in records:  # newest first
        out.setdefault(record.partition_key, record)
    return out


def log_materializations(context: dg.AssetExecutionContext, materializations: list[dg.AssetMaterialization]) -> None:
    """Logs materializations as one event batch (see the module docstring), in the step's event stream as ``log_event`` does."""
    _log_batch(context, materializations, DagsterEvent.asset_materialization)


def failing_among(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partitions: list[str]) -> list[str]:
    """Which of ``partitions`` fail ``check_key``: their latest evaluation of their latest
    materialization failed (one query, for these partitions only)."""
    if not partitions:
        return []
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key], partition_keys=partitions)
    return sorted(i.partition_key for i in infos
                  if i.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and i.is_current)


def log_check_evaluations(context: dg.AssetExecutionContext, evaluations: list[dg.AssetCheckEvaluation],
                          of_this_step: bool = True) -> list[dg.AssetCheckEvaluation]:
    """Logs check evaluations as one event batch, except those that block (failed, ERROR,
    blocking): they are returned for the step to yield, so that Dagster fails the step at its end
    as it does for any blocking check that failed. Checks of an asset the step does not compute
    (``of_this_step=False``: a gap scan evaluating the candles' checks again) are all logged."""
    def blocks(evaluation: dg.AssetCheckEvaluation) -> bool:
        return (of_this_step and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
                and evaluation.blocking)

    def event(step_context, evaluation: dg.AssetCheckEvaluation, batch: DagsterEventBatchMetadata) -> DagsterEvent:
        message = (f"Asset check '{evaluation.check_name}' on '{evaluation.asset_key.to_user_string()}' "
                   + ("passed." if evaluation.passed else "did not pass."))
        return DagsterEvent.from_step(DagsterEventType.ASSET_CHECK_EVALUATION, step_context, evaluation, message, batch)

    _log_batch(context, [e for e in evaluations if not blocks(e)], event)
    return [e for e in evaluations if blocks(e)]


def _log_batch(context: dg.AssetExecutionContext, events: list, make) -> None:
    op_context = context.op_execution_context
    step_context = op_context._step_execution_context  # noqa: SLF001
    batch_id = generate_event_batch_id()
    for n, event in enumerate(events):
        op_context._events.append(make(step_context, event, DagsterEventBatchMetadata(batch_id, n == len(events) - 1)))  # noqa: SLF001


def check_target(record: dg.EventLogRecord | None) -> AssetCheckEvaluationTargetMaterializationData | None:
    """What a check evaluation logged per partition checked: Dagster's per-partition check state
    counts an evaluation as current only when it names the partition's latest materialization."""
    if record is None:
        return None
    return AssetCheckEvaluationTargetMaterializationData(storage_id=record.storage_id, run_id=record.run_id,
                                                         timestamp=record.timestamp)


@contextlib.contextmanager
def beta_apis_in_use() -> Iterator[None]:
    """The definitions use beta and preview APIs on purpose (multi-dimension partition mappings,
    a backfill policy, partitioned asset checks): their warnings are ours, not a user's to read in
    every log, so they are silenced where the definitions are built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


@contextlib.contextmanager
def pool_slot(context: dg.AssetExecutionContext, pool: str, poll_seconds: float = 1.0) -> Iterator[None]:
    """Holds one slot of the concurrency ``pool`` while the body runs, waiting for one first
    (``concurrency.pools`` in dagster.yaml sets the limits, the UI shows who holds them). Without
    instance concurrency (an ephemeral instance) or with run-granularity pools, it does not wait."""
    claim_key = f"{context.get_step_execution_context().step.key}@{pool}"
    with InstanceConcurrencyContext(context.instance, context.run) as slots:
        waiting_since = None
        while not slots.claim(pool, claim_key):
            if waiting_since is None:
                waiting_since = time.monotonic()
                context.log.info(f"waiting for a slot in concurrency pool {pool}")
            time.sleep(poll_seconds)
        if waiting_since is not None:
            context.log.info(f"got a slot in {pool} after {time.monotonic() - waiting_since:.1f} s")
        try:
            yield
        finally:
            slots.free_step(claim_key)


def hopeless_failure(context: dg.AssetExecutionContext, description: str, metadata: dict | None = None) -> dg.Failure:
    """The failure of a step that no retry can heal: neither the step's RetryPolicy
    (``allow_retries=False``) nor run retries (its run is tagged first) try it again."""
    context.instance.add_run_tags(context.run.run_id, {RETRY_ON_ASSET_OR_OP_FAILURE_TAG: "false"})
    return dg.Failure(description=description, metadata=metadata, allow_retries=False)


def failed_partitions(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> list[str]:
    """The partitions whose latest materialization attempt's run failed and that were not
    materialized since: what Dagster's partition status calls failed, read as its status cache
    reads it (planned materializations without a materialization, and their runs' status)."""
    attempts = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(asset_key)
    if not attempts:
        return []
    run_ids = sorted({run_id for run_id, _ in attempts.values()})
    failed: set[str] = set()
    for at in range(0, len(run_ids), 100):
        failed |= {r.run_id for r in instance.get_runs(dg.RunsFilter(run_ids=run_ids[at:at + 100], statuses=[dg.DagsterRunStatus.FAILURE]))}
    return sorted(partition for partition, (run_id, _) in attempts.items() if run_id in failed)
