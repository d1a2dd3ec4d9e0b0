"""What the Prometheus exporter (``ohlcv-metrics``) serves, read at scrape time from the warehouse
and the Dagster instance. Every reading is bounded by the universe, not by the history stored: the
newest candle of each instrument (one primary-key index lookup each), the gap records, the durable
per-venue counters (``venue_counters``), the shared rate budgets, Dagster's check records (read
incrementally), run counts and the daemon's heartbeats. No candle is counted.

Labels are only ``venue``, ``symbol``, ``interval``, ``class``, ``check``, ``severity`` and
``egress``, so the number of series is bounded by the universe: two per instrument and interval
(freshness and its target), the rest per venue (and interval, class, check or egress address). ``METRICS`` is the list the docs, the alert rules and the dashboard use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Callable, Iterable, Iterator

import dagster as dg

from ohlcv_assets.defs.dagster_internals import failed_partitions
from ohlcv_assets.http.egress import budget_key, parse_apart_budget_key
from ohlcv_assets.core.gaps import BEFORE_LISTING, BEYOND_HISTORY, EXCHANGE_DOWNTIME, FILLABLE, NO_TRADES, RETIRED
from ohlcv_assets.defs.monitoring import candle_age_ms, failing_checks
from ohlcv_assets.core.names import candles_key, freshness_windows, split_partition_key_string
from ohlcv_assets.quality.checks import checks_for
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.core.universe import instrument_key
from ohlcv_assets.warehouse import delistings, venue_counters
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.summaries import budget_states, latest_open_times, open_gaps_by_venue

GAUGE, COUNTER = "gauge", "counter"
DEFAULT_EGRESS = "default"  # the egress label of requests that leave from the system's choice of address
GAP_CLASSES = {FILLABLE: "fillable", EXCHANGE_DOWNTIME: "downtime", NO_TRADES: "no_trades", BEYOND_HISTORY: "beyond_history",
               BEFORE_LISTING: "before_listing", RETIRED: "retired"}
CHECK_SEVERITIES = ("error", "warn")
RUNS_IN_PROGRESS = ("STARTING", "STARTED", "CANCELING")
FAILED_RUNS_WINDOW = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str  # as exposed (counters end in _total)
    type: str
    labels: tuple[str, ...]
    help: str


_INSTRUMENT = ("venue", "symbol", "interval")
_VENUE = ("venue", "egress")
METRICS = [
    Metric("ohlcv_freshness_seconds", GAUGE, _INSTRUMENT,
           "Seconds since the close of the newest stored candle (trading time: a weekend does not age an equity); "
           "absent for an instrument with no candle yet or delisted"),
    Metric("ohlcv_freshness_target_seconds", GAUGE, _INSTRUMENT,
           "Age beyond which the instrument's candles are stale (ohlcv-status says 'stale'): twice (two intervals, "
           "at least 15 min, plus the refresh period)"),
    Metric("ohlcv_gaps_open", GAUGE, ("venue", "interval", "class"),
           "Gap records that still describe missing candles, by class (fillable, downtime, no_trades, beyond_history, "
           "before_listing, retired); ohlcv-status names the instruments"),
    Metric("ohlcv_gap_candles_missing", GAUGE, ("venue", "interval", "class"), "Candles missing in those gaps, by class"),
    Metric("ohlcv_checks_failing", GAUGE, ("venue", "interval", "check", "severity"),
           "Partitions (instrument-days) whose latest evaluation of the check failed; severity error or warn"),
    Metric("ohlcv_partitions_failed", GAUGE, ("venue", "interval"),
           "Partitions whose latest materialization attempt failed and was not materialized since"),
    Metric("ohlcv_venue_requests_total", COUNTER, _VENUE, "Requests sent to the venue, retries included"),
    Metric("ohlcv_venue_retries_total", COUNTER, _VENUE, "Requests retried after a failure"),
    Metric("ohlcv_venue_http_429_total", COUNTER, _VENUE,
           "Rate-limit answers: HTTP 429, or the venue's own rate-limit error (Kraken's EAPI:Rate limit exceeded)"),
    Metric("ohlcv_venue_http_418_total", COUNTER, _VENUE, "Bans (HTTP 418: requests sent after a 429 was ignored)"),
    Metric("ohlcv_venue_http_5xx_total", COUNTER, _VENUE, "Server errors (HTTP 5xx)"),
    Metric("ohlcv_venue_request_errors_total", COUNTER, _VENUE,
           "Requests with no usable answer: any of the above, timeouts, refused connections, malformed bodies"),
    Metric("ohlcv_venue_retry_wait_seconds_total", COUNTER, _VENUE, "Seconds spent waiting before retries (backoff, Retry-After)"),
    Metric("ohlcv_candles_written_total", COUNTER, _VENUE, "Candles written to the warehouse (REST and archive files)"),
    Metric("ohlcv_rate_budget_backlog_seconds", GAUGE, _VENUE,
           "How far ahead of now the venue's shared request budget is reserved: 0 when idle; requests wait once it "
           "exceeds the burst allowance"),
    Metric("ohlcv_rate_budget_apart_backlog_seconds", GAUGE, ("venue", "budget", "egress"),
           "The same for a budget the venue keeps apart from its weight budget (Binance USDⓈ-M open interest: "
           "budget open_interest)"),
    Metric("ohlcv_runs_queued", GAUGE, (), "Dagster runs queued"),
    Metric("ohlcv_runs_in_progress", GAUGE, (), "Dagster runs starting, started or canceling"),
    Metric("ohlcv_runs_failed_last_hour", GAUGE, (), "Dagster runs that failed in the last hour"),
    Metric("ohlcv_daemon_heartbeat_age_seconds", GAUGE, (),
           "Seconds since the Dagster daemon's latest heartbeat (+Inf: no heartbeat ever)"),
    Metric("ohlcv_warehouse_up", GAUGE, (), "1 when the exporter could read the warehouse at this scrape, else 0"),
    Metric("ohlcv_dagster_up", GAUGE, (), "1 when the exporter could read the Dagster instance at this scrape, else 0"),
    Metric("ohlcv_scrape_duration_seconds", GAUGE, (), "Time the exporter took to read everything for this scrape"),
]
METRIC = {m.name: m for m in METRICS}


@dataclasses.dataclass(frozen=True)
class Sample:
    metric: str  # a name of METRICS
    labels: tuple[str, ...]  # values, in the metric's label order
    value: float


def _seconds(ms: float) -> float:
    return ms / 1000.0


def freshness_samples(universe: Universe, warehouse: Warehouse, now_ms: int) -> list[Sample]:
    keys = [(inst.exchange, inst.symbol, interval) for interval in universe.intervals for inst in universe.instruments_for(interval)]
    last = latest_open_times(warehouse, keys)
    delisted = delistings.delisted(warehouse)
    samples = []
    for exchange, symbol, interval in keys:
        labels = (exchange, symbol, interval)
        samples.append(Sample("ohlcv_freshness_target_seconds", labels,
                              freshness_windows(interval, universe.refresh_minutes)[1].total_seconds()))
        if (exchange, symbol, interval) in last and (exchange, symbol) not in delisted:
            age = candle_age_ms(last[(exchange, symbol, interval)], interval, now_ms,
                                universe.sessions_of(universe.instrument(instrument_key(exchange, symbol))))
            samples.append(Sample("ohlcv_freshness_seconds", labels, _seconds(age)))
    return samples


def gap_samples(universe: Universe, warehouse: Warehouse) -> list[Sample]:
    """Per venue, interval and class, the open gap records and their candles (0 where none); which
    instruments they are on, ``ohlcv-status`` says."""
    found: dict[tuple[str, str, str], tuple[int, int]] = {}
    for exchange, interval, reason, records, candles in open_gaps_by_venue(warehouse):
        key = (exchange, interval, GAP_CLASSES.get(reason, reason))
        n, missing = found.get(key, (0, 0))
        found[key] = (n + records, missing + candles)
    wanted = {(inst.exchange, interval, cls) for interval in universe.intervals
              for inst in universe.instruments_for(interval) for cls in GAP_CLASSES.values()}
    samples = []
    for key in sorted(wanted | set(found)):
        n, missing = found.get(key, (0, 0))
        samples += [Sample("ohlcv_gaps_open", key, n), Sample("ohlcv_gap_candles_missing", key, missing)]
    return samples


_COUNTER_COLUMNS = {"requests": "ohlcv_venue_requests_total", "retries": "ohlcv_venue_retries_total",
                    "http_429": "ohlcv_venue_http_429_total", "http_418": "ohlcv_venue_http_418_total",
                    "http_5xx": "ohlcv_venue_http_5xx_total", "errors": "ohlcv_venue_request_errors_total",
                    "waited_seconds": "ohlcv_venue_retry_wait_seconds_total", "candles_written": "ohlcv_candles_written_total"}


def counter_samples(warehouse: Warehouse) -> list[Sample]:
    return [Sample(metric, (row.exchange, row.egress or DEFAULT_EGRESS), float(getattr(row, column)))
            for row in venue_counters.read(warehouse) for column, metric in _COUNTER_COLUMNS.items()]


def budget_samples(universe: Universe, warehouse: Warehouse, now_s: float) -> list[Sample]:
    """Each venue's shared budget (one row per venue and egress address, keyed as ``budget_key``),
    and each budget it keeps apart (keyed ``<venue>:<budget>[@<egress>]``)."""
    states = budget_states(warehouse)
    samples = []
    for key, tat in sorted(states.items()):
        venue, _, egress = key.partition("@")
        apart = parse_apart_budget_key(key)
        if venue in universe.exchanges and budget_key(venue, egress or None) == key:
            samples.append(Sample("ohlcv_rate_budget_backlog_seconds", (venue, egress or DEFAULT_EGRESS), max(0.0, tat - now_s)))
        elif apart and apart[0] in universe.exchanges:
            samples.append(Sample("ohlcv_rate_budget_apart_backlog_seconds",
                                  (apart[0], apart[1], apart[2] or DEFAULT_EGRESS), max(0.0, tat - now_s)))
    return samples


def check_samples(instance, universe: Universe) -> list[Sample]:
    """Failing partitions per venue, interval and check (0 where none)."""
    venue_of = {inst.key: inst.exchange for inst in universe.instruments}
    samples = []
    for interval in universe.intervals:
        failing = failing_checks(instance, universe, interval)
        venues = sorted({inst.exchange for inst in universe.instruments_for(interval)})
        for spec in checks_for(interval):
            counts = dict.fromkeys(venues, 0)
            for partition in failing.get(spec.name, []):
                venue = venue_of.get(split_partition_key_string(partition)[0])
                if venue is not None:
                    counts[venue] = counts.get(venue, 0) + 1
            severity = "warn" if spec.warn_only else "error"
            samples += [Sample("ohlcv_checks_failing", (venue, interval, spec.name, severity), n) for venue, n in sorted(counts.items())]
    return samples


def failed_partition_samples(instance, universe: Universe) -> list[Sample]:
    venue_of = {inst.key: inst.exchange for inst in universe.instruments}
    samples = []
    for interval in universe.intervals:
        counts = dict.fromkeys(sorted({inst.exchange for inst in universe.instruments_for(interval)}), 0)
        for partition in failed_partitions(instance, candles_key(interval)):
            venue = venue_of.get(split_partition_key_string(partition)[0])
            if venue is not None:
                counts[venue] += 1
        samples += [Sample("ohlcv_partitions_failed", (venue, interval), n) for venue, n in counts.items()]
    return samples


def run_samples(instance, now_s: float) -> list[Sample]:
    status = dg.DagsterRunStatus
    failed_since = dt.datetime.fromtimestamp(now_s, dt.timezone.utc) - FAILED_RUNS_WINDOW
    beats = instance.get_daemon_heartbeats()
    return [
        Sample("ohlcv_runs_queued", (), instance.get_runs_count(dg.RunsFilter(statuses=[status.QUEUED]))),
        Sample("ohlcv_runs_in_progress", (), instance.get_runs_count(dg.RunsFilter(statuses=[status[s] for s in RUNS_IN_PROGRESS]))),
        Sample("ohlcv_runs_failed_last_hour", (),
               instance.get_runs_count(dg.RunsFilter(statuses=[status.FAILURE], updated_after=failed_since))),
        Sample("ohlcv_daemon_heartbeat_age_seconds", (),
               now_s - max(b.timestamp for b in beats.values()) if beats else float("inf")),
    ]


def read_samples(universe: Universe, warehouse: Callable[[], Warehouse], instance: Callable[[], object] | None,
                 now: Callable[[], float] = time.time, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> list[Sample]:
    """Everything for one scrape. ``warehouse`` and ``instance`` open (or return the open) warehouse and
    Dagster instance; a part that cannot be read is reported by ``ohlcv_warehouse_up`` /
    ``ohlcv_dagster_up`` = 0 and logged, and the other parts are still served."""
    started = time.perf_counter()
    now_s = now()
    samples: list[Sample] = []
    ok = 1.0
    try:
        wh = warehouse()
        samples += freshness_samples(universe, wh, int(now_s * 1000))
        samples += gap_samples(universe, wh)
        samples += counter_samples(wh)
        samples += budget_samples(universe, wh, now_s)
    except Exception as err:  # any failure to read is what the gauge reports; the message says which
        ok = 0.0
        log(f"ohlcv-metrics: cannot read the warehouse: {type(err).__name__}: {err}"[:500])
    samples.append(Sample("ohlcv_warehouse_up", (), ok))
    if instance is not None:
        ok = 1.0
        try:
            inst = instance()
            samples += run_samples(inst, now_s)
            samples += check_samples(inst, universe)
            samples += failed_partition_samples(inst, universe)
        except Exception as err:
            ok = 0.0
            log(f"ohlcv-metrics: cannot read the Dagster instance: {type(err).__name__}: {err}"[:500])
        samples.append(Sample("ohlcv_dagster_up", (), ok))
    samples.append(Sample("ohlcv_scrape_duration_seconds", (), time.perf_counter() - started))
    return samples


def metric_families(samples: Iterable[Sample]) -> Iterator:
    """The samples as prometheus_client metric families, in ``METRICS`` order."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    by_metric: dict[str, list[Sample]] = {}
    for sample in samples:
        by_metric.setdefault(sample.metric, []).append(sample)
    for metric in METRICS:
        if metric.name not in by_metric:
            continue
        if metric.type == COUNTER:
            family = CounterMetricFamily(metric.name.removesuffix("_total"), metric.help, labels=metric.labels)
        else:
            family = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
        for sample in by_metric[metric.name]:
            family.add_metric(list(sample.labels), sample.value)
        yield family
