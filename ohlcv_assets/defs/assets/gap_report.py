"""The ``gap_report/<interval>`` assets: per instrument, every missing candle found and explained."""

import datetime as dt

import dagster as dg

from ohlcv_assets.defs.assets.candles import recheck_stored
from ohlcv_assets.defs.dagster_internals import failing_among
from ohlcv_assets.quality.funding_gaps import scan_funding
from ohlcv_assets.quality.open_interest_gaps import scan_open_interest
from ohlcv_assets.quality.gap_scan import ScanResult, scan
from ohlcv_assets.core.gaps import GAP_CLASSES
from ohlcv_assets.core.intervals import HOUR_MS, interval_ms, ms_to_iso, now_ms, utc_day
from ohlcv_assets.core.names import (
    INSTRUMENT,
    candles_key,
    freshness_windows,
    funding_key,
    gap_report_key,
    instruments_partitions_name,
    open_interest_key,
    partition_key_string,
)
from ohlcv_assets.defs.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import CONFIRMED_EMPTY
from ohlcv_assets.venues.series import FUNDING_CODE, OI_CODE, OI_PERIOD

REPORT_DAYS = 31
BAR_WIDTH = 20

def coverage_chart(result: ScanResult, days: int = REPORT_DAYS) -> str:
    """Per-day coverage as a markdown table with bars: quicker to look at than to read."""
    lines = ["| day | coverage | stored / expected |", "|---|---|---:|"]
    for day, present, expected in result.day_coverage[-days:]:
        share = 1.0 if expected == 0 else present / expected
        filled = round(share * BAR_WIDTH)
        lines.append(f"| {day} | `{'█' * filled}{'·' * (BAR_WIDTH - filled)}` {share:.1%} | {present} / {expected} |")
    return "\n".join(lines)


def gap_table(result: ScanResult, step_ms: int, limit: int = 50) -> str:
    lines = ["| first missing | last missing | candles | reason |", "|---|---|---:|---|"]
    for gap in result.gaps[:limit]:
        lines.append(f"| {ms_to_iso(gap.start_ms)} | {ms_to_iso(gap.end_ms - step_ms)} | {gap.candles(step_ms)} | {gap.reason} |")
    if len(result.gaps) > limit:
        lines.append(f"| … | | | {len(result.gaps) - limit} more |")
    return "\n".join(lines)


def report_metadata(result: ScanResult, step: int) -> dict:
    by_reason = result.candles_by_reason(step)
    return {
        "coverage_pct": round(100 * result.coverage, 4),
        "expected_candles": result.expected,
        "stored_candles": result.present,
        **{f"missing_{reason}": by_reason.get(reason, 0) for reason in GAP_CLASSES},
        "gaps": len(result.gaps),
        "new_gap_records": result.changes["new"],
        "gaps_closed": result.changes["filled"] + result.changes["superseded"],
        "gaps_tried_again": result.changes["tried_again"],
        "coverage_by_day": dg.MetadataValue.md(coverage_chart(result)),
        "gap_list": dg.MetadataValue.md(gap_table(result, step)),
    }


def recheck_explained_days(context: dg.AssetExecutionContext, warehouse: WarehouseResource, universe: Universe,
                           instrument, interval: str) -> int:
    """The one path that turns a day green once its missing candles are confirmed as downtime (or
    no trades): every scan, however it was launched (the daemon's schedule or sensors, `dagster
    asset materialize`, the UI), evaluates the candles' checks again for the instrument's stored
    days that fail ``completeness`` and hold a confirmed-empty range, from the warehouse only
    (nothing is fetched). A day materialized after the confirmation is checked against it at once.
    Returns how many days were checked again."""
    days: set[dt.date] = set()
    for record in gap_records.instrument_gaps(warehouse.warehouse, instrument.exchange, instrument.symbol, interval):
        if record.status == CONFIRMED_EMPTY:
            first, last = utc_day(record.start_ms), utc_day(record.end_ms - 1)
            days.update(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    keys = {(instrument.key, day): partition_key_string(instrument.key, day) for day in sorted(days)}
    failing = set(failing_among(context.instance, dg.AssetCheckKey(candles_key(interval), "completeness"), list(keys.values())))
    keys = {k: partition for k, partition in keys.items() if partition in failing}
    if keys:
        windows = tuple(w.total_seconds() * 1000 for w in freshness_windows(interval, universe.refresh_minutes))
        recheck_stored(context, candles_key(interval), warehouse, universe, [instrument], interval, keys, now_ms(), windows,
                       of_this_step=False)
        context.log.info(f"{instrument.label()} {interval}: checked again {len(keys)} day(s) whose completeness failed "
                         f"before their missing candles were confirmed: {', '.join(str(day) for _, day in keys)}")
    return len(keys)


def scanned_series(code: str):
    """What ``gap_report/<code>`` scans: (asset key, grid step of its gap records, what one missing
    item is, the scan of a series stored apart from candles or None for a candles series)."""
    if code == FUNDING_CODE:  # each missing settlement of the schedule, gaps keyed on the hour, Gap.count settlements each
        return funding_key(), HOUR_MS, "funding settlement", scan_funding
    if code == OI_CODE:
        return open_interest_key(), interval_ms(OI_PERIOD), "5-minute open interest sample", scan_open_interest
    return candles_key(code), interval_ms(code), f"{code} candle", None


def build_gap_report_asset(universe: Universe, interval: str) -> dg.AssetsDefinition:
    """``gap_report/<code>`` of a candles series, of the funding settlements (``gap_report/funding``)
    or of the open interest (``gap_report/oi_5m``)."""
    scanned, step, what, scan_apart = scanned_series(interval)
    key = gap_report_key(interval)

    @dg.asset(
        key=key,
        partitions_def=dg.DynamicPartitionsDefinition(name=instruments_partitions_name(interval)),
        deps=[dg.AssetDep(scanned, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(INSTRUMENT))],
        group_name="gaps",
        kinds={"sql"},
        # one run scans a whole range of instruments: a run process costs seconds of CPU, a scan milliseconds
        backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        description=(
            f"Every missing {what} of one instrument since its start date, classified "
            f"({', '.join(GAP_CLASSES)}) by asking the exchange, and recorded in table `gaps`; "
            "metadata shows coverage per day."
        ),
    )
    def gap_report(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource):
        """Each instrument of the run is materialized as soon as it is scanned, with its own metadata
        (the step yields no output, so nothing is materialized twice)."""
        instruments = []
        for partition in context.partition_keys:
            try:
                instruments.append(universe.instrument(partition))
            except KeyError:  # taken out of the universe; the instrument sensor unregisters it
                context.log.warning(f"{partition} is no longer in the universe: not scanned")
        for n, instrument in enumerate(instruments, 1):
            source = exchange.source(instrument.exchange)
            result = (scan_apart(source, warehouse.warehouse, instrument, now_ms(), universe.refresh_minutes) if scan_apart
                      else scan(source, warehouse.warehouse, instrument, interval, now_ms(), universe.refresh_minutes))
            context.log.info(f"{instrument.label()} {interval} ({n}/{len(instruments)}): coverage {result.coverage:.4%}, "
                             f"missing by reason {result.candles_by_reason(step)}, records {result.changes}")
            context.log_event(dg.AssetMaterialization(asset_key=key, partition=instrument.key,
                                                      metadata=report_metadata(result, step)))
            if scan_apart is None:  # funding_complete, open_interest_complete leave out confirmed ones from the next run on
                recheck_explained_days(context, warehouse, universe, instrument, interval)
        yield from ()

    return gap_report
