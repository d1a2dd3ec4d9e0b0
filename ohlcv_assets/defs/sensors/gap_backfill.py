"""Turns fillable gaps into backfills of exactly the affected candles partitions, and settles them
when the backfills end. The gap records in the warehouse are the durable state.

Nothing loops: a gap whose candles are stored (by a gap backfill, a user's backfill or the today
schedule) is ``filled`` from the warehouse, without asking the exchange; partitions that a running
backfill or an unfinished run will write are not requested again; a gap in flight is never
requested twice; a gap still missing after a backfill backs off exponentially until given up.
A day whose completeness failed before a scan confirmed its missing candles is checked again by
that scan (``assets/gap_report.recheck_explained_days``), not from here: so also without the daemon.
"""

import collections
import datetime as dt
import json
import uuid

import dagster as dg

from ohlcv_assets.defs.dagster_internals import backfill_run_request, backfill_state, backfills_tagged, partitions_in_flight
from ohlcv_assets.core.intervals import now_ms, utc_day
from ohlcv_assets.core.names import (
    GAPS_TAG,
    REASON_TAG,
    REQUEST_TAG,
    gap_report_key,
    partition_key_string,
)
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.core.universe import Universe, instrument_key
from ohlcv_assets.warehouse import gap_records

MAX_GAPS_PER_TICK = 200
MAX_PARTITIONS_PER_TICK = 1500  # a new instrument's four years of history in one backfill, not four ticks apart
LOST_AFTER_MS = 30 * 60_000
SUBMITTED_REMEMBERED = 100


def gap_partitions(record: gap_records.GapRecord) -> list[str]:
    """The candles partitions (day|instrument) a gap spans."""
    first, last = utc_day(record.start_ms), utc_day(record.end_ms - 1)
    key = instrument_key(record.exchange, record.symbol)
    return [partition_key_string(key, first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]


def build_gap_backfill_sensor(universe: Universe, interval: str, candles: dg.AssetsDefinition) -> dg.SensorDefinition:
    """For ``interval``'s gap records, backfills of ``candles`` (its candles asset, ``funding_rates``
    for the records of ``funding``, ``open_interest`` for those of ``oi_5m``: the same instrument x
    day partitions)."""
    @dg.sensor(
        name=f"gap_backfill_{interval}",
        minimum_interval_seconds=universe.sensor_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        # a backfill-launching sensor needs an asset selection; the gap reports are re-scanned from here too
        asset_selection=dg.AssetSelection.assets(candles, gap_report_key(interval)),
        description=f"Backfills fillable {interval} gaps (candles, funding settlements or open interest) found by gap_report, at most "
                    f"{MAX_PARTITIONS_PER_TICK} partitions per tick, skipping partitions already being written; "
                    "settles gaps from what is stored when backfills end, and re-scans the instruments they touched.",
    )
    def gap_backfill(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
        store, now = warehouse.warehouse, now_ms()
        cursor = json.loads(context.cursor) if context.cursor else {"submitted": [], "backfills_requested": 0}
        requests = follow_requests(context, store, interval, now, set(cursor["submitted"]))
        due = gap_records.settle_stored(store, gap_records.due_for_backfill(store, now, MAX_GAPS_PER_TICK, interval),
                                        "found stored before its backfill", now)
        busy = partitions_in_flight(context.instance, candles.key, candles.partitions_def) if due else set()
        partitions: set[str] = set()
        chosen = []
        for record in due:
            wanted = set(gap_partitions(record)) - busy
            if not wanted:
                continue  # being written already: settled from the warehouse once that ends
            if partitions and len(partitions | wanted) > MAX_PARTITIONS_PER_TICK:
                break
            partitions |= wanted
            chosen.append(record)
        if chosen:
            request_id = uuid.uuid4().hex
            gap_records.mark_requested(store, [r.id for r in chosen], request_id, now)
            requests.append(backfill_run_request(candles.key, partitions, context.repository_def.asset_graph, tags={
                REQUEST_TAG: request_id, REASON_TAG: "gap-fill", GAPS_TAG: ",".join(str(r.id) for r in chosen)[:4000],
            }))
            cursor = {"submitted": [*cursor["submitted"], request_id][-SUBMITTED_REMEMBERED:],
                      "backfills_requested": cursor["backfills_requested"] + 1}
            context.log.info(f"backfill {request_id}: {len(chosen)} gaps, {len(partitions)} candles partitions")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return gap_backfill


def follow_requests(context: dg.SensorEvaluationContext, store, interval: str, now: int, submitted: set[str]) -> list[dg.RunRequest]:
    """Settles the gaps of finished backfills from what is stored, and asks for one re-scan of
    every instrument a finished backfill touched (so its gap report shows the new coverage).

    The cursor (saved by Dagster only with a tick's submitted requests) lists the requests that were
    really submitted: gaps marked by a tick that then failed are released at once.
    """
    by_request = collections.defaultdict(list)
    for record in gap_records.in_flight(store, interval):
        by_request[record.request_id].append(record)
    rescans: dict[str, dg.RunRequest] = {}
    for request_id, records in by_request.items():
        backfills = backfills_tagged(context.instance, {REQUEST_TAG: request_id})
        if not backfills:
            if request_id not in submitted:
                gap_records.release(store, records, now)
            elif min(r.updated_ms for r in records) < now - LOST_AFTER_MS:
                missing = gap_records.settle_stored(store, records, "stored, though its backfill never started", now)
                gap_records.mark_backfill_finished(store, missing, False, "backfill never started", now)
            continue
        running, succeeded, status = backfill_state(backfills[0])
        if running:
            continue
        why = f"backfill {backfills[0].backfill_id} {status}"
        missing = gap_records.settle_stored(store, records, why, now)
        gap_records.mark_backfill_finished(store, missing, succeeded, why, now)
        for record in records:
            key = instrument_key(record.exchange, record.symbol)
            rescans[key] = dg.RunRequest(run_key=f"rescan-{request_id}-{key}", asset_selection=[gap_report_key(interval)],
                                         partition_key=key, tags={REASON_TAG: "re-scan after a gap backfill"})
    return list(rescans.values())
