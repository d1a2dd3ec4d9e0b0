"""Turns fillable gaps into backfills of exactly the affected candles partitions and settles them
when the backfills end (the gap_report automation re-scans the instrument then). The gap records in
the warehouse are the durable state: a gap in flight is never requested twice, and failures back
off exponentially until given up."""

import collections
import datetime as dt
import json
import uuid

import dagster as dg
# A sensor launches a backfill (and so the assets' multi-run backfill policy) by returning a
# RunRequest over an AssetGraphSubset, as Dagster's own automation sensors do; there is no
# public constructor yet, and backfills are looked up by tag through the same internal types.
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

from ohlcv_assets.assets.candles import candles_key
from ohlcv_assets.assets.gap_report import REQUEST_TAG
from ohlcv_assets.intervals import now_ms, utc_day
from ohlcv_assets.partitions import partition_key
from ohlcv_assets.resources import WarehouseResource
from ohlcv_assets.universe import instrument_key
from ohlcv_assets.warehouse import gap_records

REASON_TAG = "ohlcv/reason"
MAX_GAPS_PER_TICK = 200
MAX_PARTITIONS_PER_TICK = 400
LOST_AFTER_MS = 30 * 60_000
SUBMITTED_REMEMBERED = 100
_RUNNING = {BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING}


def gap_days(record: gap_records.GapRecord) -> list[dt.date]:
    first, last = utc_day(record.start_ms), utc_day(record.end_ms - 1)
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def build_gap_backfill_sensor(interval: str, candles: dg.AssetsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"gap_backfill_{interval}",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.assets(candles),  # a backfill-launching sensor needs an asset selection
        description=f"Backfills fillable {interval} gaps found by gap_report, at most "
                    f"{MAX_PARTITIONS_PER_TICK} partitions per tick, and settles them when the backfill ends.",
    )
    def gap_backfill(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
        store, now = warehouse.warehouse, now_ms()
        cursor = json.loads(context.cursor) if context.cursor else {"submitted": [], "backfills_requested": 0}
        follow_requests(context, store, interval, now, set(cursor["submitted"]))
        requests = []
        due = gap_records.due_for_backfill(store, now, MAX_GAPS_PER_TICK, interval)
        partitions: set[AssetKeyPartitionKey] = set()
        chosen = []
        for record in due:
            wanted = {AssetKeyPartitionKey(candles_key(interval), partition_key(instrument_key(record.exchange, record.symbol), day))
                      for day in gap_days(record)}
            if partitions and len(partitions | wanted) > MAX_PARTITIONS_PER_TICK:
                break
            partitions |= wanted
            chosen.append(record)
        if chosen:
            request_id = uuid.uuid4().hex
            gap_records.mark_requested(store, [r.id for r in chosen], request_id, now)
            subset = AssetGraphSubset.from_asset_partition_set(partitions, context.repository_def.asset_graph)
            requests.append(dg.RunRequest.for_asset_graph_subset(subset, tags={
                REQUEST_TAG: request_id, REASON_TAG: "gap-fill", "ohlcv/gaps": ",".join(str(r.id) for r in chosen)[:4000],
            }))
            cursor = {"submitted": [*cursor["submitted"], request_id][-SUBMITTED_REMEMBERED:],
                      "backfills_requested": cursor["backfills_requested"] + 1}
            context.log.info(f"backfill {request_id}: {len(chosen)} gaps, {len(partitions)} candles partitions")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return gap_backfill


def follow_requests(context: dg.SensorEvaluationContext, store, interval: str, now: int, submitted: set[str]) -> None:
    """Settles the gaps of finished backfills.

    The cursor (saved by Dagster only with a tick's submitted requests) lists the requests that were
    really submitted: gaps marked by a tick that then failed are released at once.
    """
    by_request = collections.defaultdict(list)
    for record in gap_records.in_flight(store, interval):
        by_request[record.request_id].append(record)
    for request_id, records in by_request.items():
        backfills = context.instance.get_backfills(filters=BulkActionsFilter(tags={REQUEST_TAG: request_id}))
        if not backfills:
            if request_id not in submitted:
                gap_records.release(store, records, now)
            elif min(r.updated_ms for r in records) < now - LOST_AFTER_MS:
                gap_records.mark_backfill_finished(store, records, False, "backfill never started", now)
            continue
        backfill = backfills[0]
        if backfill.status in _RUNNING:
            continue
        succeeded = backfill.status == BulkActionStatus.COMPLETED_SUCCESS
        gap_records.mark_backfill_finished(store, records, succeeded, f"backfill {backfill.backfill_id} {backfill.status.value}", now)
