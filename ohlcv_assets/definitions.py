"""Assembles the code location: assets, sensors and schedules built from the universe file. Only
assembles: every piece is built in its own module."""


import os

import dagster as dg

from ohlcv_assets.defs.assets.candles import CANDLES_RETRY_POLICY, build_candles_asset
from ohlcv_assets.defs.assets.derived import build_derived_asset
from ohlcv_assets.defs.assets.features import build_features_asset
from ohlcv_assets.defs.assets.funding import build_funding_asset, build_open_interest_asset
from ohlcv_assets.defs.assets.gap_report import build_gap_report_asset
from ohlcv_assets.defs.assets.maintenance import build_export_asset, build_retention_asset
from ohlcv_assets.defs.dagster_internals import beta_apis_in_use
from ohlcv_assets.defs.jobs import gap_scan_job
from ohlcv_assets.defs.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.defs.schedules.gap_scan import build_gap_scan_schedule
from ohlcv_assets.defs.schedules.maintenance import maintenance_schedule
from ohlcv_assets.defs.schedules.today import build_today_schedule
from ohlcv_assets.defs.sensors.alerts import alert_on_run_failure, alert_resource, build_quality_alert_sensor
from ohlcv_assets.defs.sensors.gap_backfill import build_gap_backfill_sensor
from ohlcv_assets.defs.sensors.instruments import build_instrument_sensor
from ohlcv_assets.core.settings import resolve_environment
from ohlcv_assets.core.universe import UNIVERSE_ENV, load_universe, universe_in_use


def build_definitions(universe_path: str | None = None, warehouse_url: str | None = None,
                      retry_policy: dg.RetryPolicy = CANDLES_RETRY_POLICY) -> dg.Definitions:
    """The code location for one universe file (None: OHLCV_UNIVERSE or the bundled demo); the
    exchange resource reads the same file (by its absolute path), so partitions and runs always
    agree, and each candles materialization records which file it was."""
    universe_path = str(universe_in_use(universe_path))
    universe = load_universe(universe_path)
    with beta_apis_in_use():
        # trade candles per interval, then a perpetual's price series (mark_1h, idx_1h, prem_1h) the same way
        candles = {code: build_candles_asset(universe, code, retry_policy) for code in universe.candle_series()}
        warehouse = WarehouseResource.from_settings() if warehouse_url is None else WarehouseResource(url=warehouse_url)
        features = [build_features_asset(universe, interval) for interval in universe.intervals]
        derived = [build_derived_asset(universe, interval, source) for interval, source in universe.derived_series]
        funding = [build_funding_asset(universe, retry_policy)] if universe.event_series() else []
        open_interest = [build_open_interest_asset(universe, retry_policy)] if universe.open_interest_series() else []
        # gap reports, scans and gap backfills of the candles series, then of the funding settlements and open interest
        scanned = {**candles, **{code: asset for code, asset in zip(universe.event_series(), funding)},
                   **{code: asset for code, asset in zip(universe.open_interest_series(), open_interest)}}
        reports = [build_gap_report_asset(universe, code) for code in scanned]
        scan_jobs = {code: gap_scan_job(code) for code in scanned}

    return dg.Definitions(
        # Runs here are one step each: executing it in the run process saves a process spawn per run.
        executor=dg.in_process_executor,
        assets=[*candles.values(), *derived, *features, *reports, build_export_asset(universe), build_retention_asset(universe),
                *funding, *open_interest],
        jobs=list(scan_jobs.values()),
        sensors=[
            build_instrument_sensor(universe, list(scan_jobs.values())),
            *(build_gap_backfill_sensor(universe, interval, asset) for interval, asset in scanned.items()),
            alert_on_run_failure,
            build_quality_alert_sensor(universe),
            dg.AutomationConditionSensorDefinition(
                "automation", target=dg.AssetSelection.groups("features", "derived"),
                default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                description="Recomputes features whose candles (or warm-up candles) changed, and derived candles "
                            "whose source candles changed.",
            ),
        ],
        schedules=[
            *(build_today_schedule(universe, interval, asset) for interval, asset in candles.items()),
            *(build_today_schedule(universe, code, asset, "funding settlements") for code, asset in zip(universe.event_series(), funding)),
            *(build_today_schedule(universe, code, asset, "open interest") for code, asset in zip(universe.open_interest_series(), open_interest)),
            *(build_gap_scan_schedule(interval, job) for interval, job in scan_jobs.items()),
            maintenance_schedule(),
        ],
        resources={
            "exchange": ExchangeResource(universe_path=universe_path, warehouse=warehouse),
            "warehouse": warehouse,
            "alerts": alert_resource(),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded when Dagster loads the code location, not when this module is imported. Relative
    paths in the settings are made absolute here (against the working directory Dagster was
    started from), so that the runs it launches read the same files; a missing universe file or
    SQLite directory fails the load, naming the path."""
    resolve_environment(dagster_home=False)
    return build_definitions(os.environ.get(UNIVERSE_ENV) or None)
