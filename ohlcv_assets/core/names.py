"""Names every part shares: asset keys, job names, tags, partition keys and freshness windows.

Assets, sensors, schedules, monitoring and the CLIs import these from here (never from each
other), so a name is spelled once. Nothing of the package is imported but ``intervals``.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ohlcv_assets.core.intervals import interval_ms

DAY = "day"
INSTRUMENT = "instrument"

REASON_TAG = "ohlcv/reason"  # why a run exists, shown in the UI
REQUEST_TAG = "ohlcv/gap_request"  # the gap request a backfill fills
GAPS_TAG = "ohlcv/gaps"  # ids of the gap records a backfill fills
REFRESH_TAG = "ohlcv/refresh"  # the interval a keep-today-fresh run refreshes
# Metadata of every candles materialization: what the run read and wrote, so that `ohlcv-status`
# reads the same universe and warehouse as the instance runs with (or says they differ).
UNIVERSE_METADATA = "universe"  # absolute path of the universe file
WAREHOUSE_METADATA = "warehouse"  # warehouse URL, password and query left out
# Dagster's own run tags for a partition range (exported only from a private module).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # seconds; run monitoring ends a run that runs longer

_INSTRUMENTS_PREFIX = "instruments_"
MAX_PARTITIONS_PER_RUN = 366  # candles days per ranged run: a year; runs stream, so memory does not grow with the range
INSTRUMENTS_PER_REFRESH_RUN = 500  # a today refresh of more instruments is split into runs side by side


def candles_key(interval: str) -> dg.AssetKey:
    return dg.AssetKey(["candles", interval])


def funding_key() -> dg.AssetKey:
    """A perpetual's funding rate settlements (``venues.series.FUNDING_CODE``)."""
    return dg.AssetKey(["funding_rates"])


def open_interest_key() -> dg.AssetKey:
    """A perpetual's open interest every 5 minutes (``venues.series.OI_CODE``)."""
    return dg.AssetKey(["open_interest"])


def features_key(interval: str) -> dg.AssetKey:
    return dg.AssetKey(["candle_features", interval])


def derived_series_name(interval: str, source: str) -> str:
    """A derived interval and its source as one name: ``4h_from_1m``."""
    return f"{interval}_from_{source}"


def derived_key(interval: str, source: str) -> dg.AssetKey:
    """The asset of an interval derived in the warehouse from a finer stored one, e.g. derived_candles/4h_from_1m:
    apart from ``candles/4h``, which holds the venue's own 4h where it is fetched."""
    return dg.AssetKey(["derived_candles", derived_series_name(interval, source)])


def gap_report_key(interval: str) -> dg.AssetKey:
    return dg.AssetKey(["gap_report", interval])


def scan_job_name(interval: str) -> str:
    return f"scan_gaps_{interval}"


def partition_tags(first: str, last: str | None = None) -> dict[str, str]:
    """Dagster's run tags for one partition, or for the range from ``first`` to ``last``."""
    if last in (None, first):
        return {PARTITION_TAG: first}
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def scan_request(interval: str, instrument_keys: list[str], run_key: str, reason: str) -> dg.RunRequest:
    """One run of the ``scan_gaps_<interval>`` job over a contiguous run of registered instruments
    (first to last, in the order they were registered), as schedules and sensors ask for it."""
    first, last = instrument_keys[0], instrument_keys[-1]
    if first == last:  # a partition key of its own, as Dagster resolves a single partition's run
        return dg.RunRequest(run_key=run_key, job_name=scan_job_name(interval), partition_key=first, tags={REASON_TAG: reason})
    return dg.RunRequest(run_key=run_key, job_name=scan_job_name(interval), tags={REASON_TAG: reason, **partition_tags(first, last)})


def instruments_partitions_name(interval: str) -> str:
    """The dynamic partitions set of an interval's instruments."""
    return f"{_INSTRUMENTS_PREFIX}{interval}"


def interval_of_partitions_name(name: str) -> str | None:
    """The fetched interval of a partitions set; None for a derived series' set (``instruments_4h_from_1m``)."""
    rest = name.removeprefix(_INSTRUMENTS_PREFIX)
    return None if "_from_" in rest else rest


def partition_key_string(instrument_key: str, day: dt.date) -> str:
    """A candles partition key as Dagster writes it: dimensions sorted by name, ``day|instrument``."""
    return f"{day.isoformat()}|{instrument_key}"


def split_partition_key_string(key: str) -> tuple[str, dt.date]:
    """(instrument key, day) of ``day|instrument``."""
    day, instrument = key.split("|")
    return instrument, dt.date.fromisoformat(day)


def venue_pool(venue: str, egress_address: str | None = None) -> str:
    """The Dagster concurrency pool of one venue's candle requests from one egress address, e.g.
    ``exchange/binance`` or ``exchange/binance@203.0.113.7``: keyed as the rate budget is, so a
    worker host on its own address has its own slots as it has its own budget."""
    return f"exchange/{venue}" if not egress_address else f"exchange/{venue}@{egress_address}"


def freshness_windows(interval: str, refresh_minutes: int) -> tuple[dt.timedelta, dt.timedelta]:
    """(warn, fail): two intervals (at least 15 min) plus one refresh period of lag to warn,
    twice that to fail; the today schedules refresh every ``refresh_minutes``."""
    warn = max(2 * dt.timedelta(milliseconds=interval_ms(interval)), dt.timedelta(minutes=15)) + dt.timedelta(minutes=refresh_minutes)
    return warn, 2 * warn


EXPORT_KEY = dg.AssetKey("candle_export")
RETENTION_KEY = dg.AssetKey("candle_retention")
MAINTENANCE_JOB = "maintenance"
MAINTENANCE_CRON = "40 0 * * *"  # daily, after the day's last candles settled
