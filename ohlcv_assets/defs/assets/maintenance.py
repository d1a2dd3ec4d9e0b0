"""Warehouse maintenance as assets: ``candle_export`` (files for backtests) and, after it,
``candle_retention`` (dropping expired spans), both daily. Export runs first, so a month's files
are written before its candles can be dropped."""

import dagster as dg

from ohlcv_assets.ops.export import export_universe
from ohlcv_assets.core.intervals import now_ms, utc_day
from ohlcv_assets.core.names import EXPORT_KEY, RETENTION_KEY, candles_key, funding_key
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.ops.retention import DROPPED, REFUSED, apply_retention, create_partitions_ahead
from ohlcv_assets.core.settings import export_directory
from ohlcv_assets.core.universe import Universe


def build_export_asset(universe: Universe) -> dg.AssetsDefinition:
    directory = export_directory(universe.export.directory)

    @dg.asset(
        key=EXPORT_KEY,
        deps=[candles_key(code) for code in universe.candle_series()] + ([funding_key()] if universe.event_series() else []),
        group_name="maintenance",
        kinds={"parquet"},
        description=(f"Candles as files for backtests ({', '.join(universe.export.formats)}) under {directory}; "
                     "only months whose candles changed are written again."),
    )
    def candle_export(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        report = export_universe(universe, warehouse.warehouse, directory, now_ms())
        context.log.info(f"export to {directory}: {report.files_written} files written "
                         f"({report.rows_written} rows), {report.files_unchanged} unchanged")
        return dg.MaterializeResult(metadata={
            **report.as_metadata(),
            "dagster/row_count": report.rows_written,
            "directory": dg.MetadataValue.path(str(directory)),
            "written": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in report.written[:200]) or "nothing changed"),
        })

    return candle_export


def build_retention_asset(universe: Universe) -> dg.AssetsDefinition:
    @dg.asset(
        key=RETENTION_KEY,
        deps=[EXPORT_KEY],
        group_name="maintenance",
        kinds={"sql"},
        description=("Drops candles (and features) older than each interval's `retention.keep_days`, whole partitions "
                     "at a time, once coarser intervals hold their aggregates; records them in `retired_ranges`. "
                     "Creates the next month's partitions ahead of time (PostgreSQL)."),
    )
    def candle_retention(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        now = now_ms()
        outcomes = apply_retention(universe, warehouse.warehouse, utc_day(now), now)
        created = create_partitions_ahead(warehouse.warehouse, universe.intervals, now)
        for outcome in outcomes:
            (context.log.warning if outcome.action == REFUSED else context.log.info)(outcome.describe())
        dropped = [o for o in outcomes if o.action == DROPPED]
        refused = [o for o in outcomes if o.action == REFUSED]
        lines = ["| interval | span | action | candles | instruments | why |", "|---|---|---|---:|---:|---|"]
        lines += [f"| {o.interval} | {o.span.label} | {o.action} | {o.candles} | {o.instruments} | {o.why} |" for o in outcomes]
        return dg.MaterializeResult(metadata={
            "spans_dropped": len(dropped),
            "candles_dropped": sum(o.candles for o in dropped),
            "spans_refused": len(refused),
            "partitions_created_ahead": dg.MetadataValue.md(", ".join(f"`{t}`" for t in created) or "none needed"),
            "retention": dg.MetadataValue.json({i: r.model_dump() for i, r in universe.retention.items()}),
            "outcomes": dg.MetadataValue.md("\n".join(lines) if outcomes else "nothing expired"),
        })

    return candle_retention
