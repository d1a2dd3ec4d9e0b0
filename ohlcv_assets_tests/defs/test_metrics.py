"""The exporter's readings (``ohlcv_assets.defs.metrics``) on real warehouses, the durable per-venue
counters the ingest path writes, and the alert rules and scrape config under Debian's promtool
(the end-to-end test with a real Prometheus is test_prometheus.py)."""

import datetime as dt
import shutil
import subprocess
import time

import pytest
import sqlalchemy as sa
import yaml

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.http.egress import budget_key
from ohlcv_assets.exchange.rate_budget import SharedRateBudget
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, day_bounds_ms, now_ms
from ohlcv_assets.defs.metrics import METRIC, METRICS, read_samples
from ohlcv_assets.warehouse import venue_counters
from ohlcv_assets.warehouse.schema import gaps
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import PLAIN_DAY
from ohlcv_assets_tests.processes import missing_part

RULES = REPO / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"


def _requests_served(simulator) -> int:
    return sum(n for name, n in simulator.stats.items() if name.startswith("requests."))


def _ingest(source, warehouse, universe, symbol, interval, days):
    instrument = next(i for i in universe.instruments if i.symbol == symbol)
    return [r for batch in ingest_days(source, warehouse, instrument, interval, days, now_ms()) for r in batch]


def test_the_ingest_path_counts_requests_rate_limits_and_candles_in_the_warehouse(simulator, universe, warehouse):
    """Counted at each batch commit into venue_counters: the counts survive the process (a second
    source, as a new run process, adds to them) and equal what the venue saw."""
    simulator.reconfigure({"faults": [{"kind": "rate_limit", "count": 2}]})
    config = universe.exchanges["binance"]
    _ingest(CcxtCandleSource("binance", config), warehouse, universe, "BTC/USDT", "1h", [PLAIN_DAY])
    [row] = venue_counters.read(warehouse)
    assert (row.exchange, row.egress) == ("binance", "")
    assert row.http_429 == simulator.stats["status.429"] == 2
    assert row.retries == row.errors == 2 and row.http_418 == row.http_5xx == 0
    assert row.requests == _requests_served(simulator)
    assert row.candles_written == 24
    assert row.waited_seconds >= 2.0  # Retry-After: 1 s each

    simulator.reconfigure({"faults": [{"kind": "status", "status": 503, "count": 1}]})
    _ingest(CcxtCandleSource("binance", config), warehouse, universe, "ETH/USDT", "5m", [PLAIN_DAY])
    [row] = venue_counters.read(warehouse)
    assert row.http_429 == 2 and row.http_5xx == 1 and row.errors == 3
    assert row.requests == _requests_served(simulator)
    assert row.candles_written == 24 + 288


def test_requests_of_a_failing_window_are_counted_although_no_batch_is_written(simulator, universe, warehouse):
    simulator.reconfigure({"faults": [{"kind": "status", "status": 503, "count": 10_000}]})
    with pytest.raises(Exception, match="still failing"):
        _ingest(CcxtCandleSource("binance", universe.exchanges["binance"]), warehouse, universe, "BTC/USDT", "1h", [PLAIN_DAY])
    [row] = venue_counters.read(warehouse)
    assert row.requests == _requests_served(simulator) > 0
    assert row.http_5xx == simulator.stats["status.503"] and row.candles_written == 0


def _samples(universe, warehouse, now_s=None):
    samples = read_samples(universe, lambda: warehouse, None, now=(lambda: now_s) if now_s else time.time)
    return {(s.metric, s.labels): s.value for s in samples}


def test_a_scrape_reports_freshness_gaps_counters_and_budgets(simulator, universe, warehouse):
    config = universe.exchanges["binance"]
    budget = SharedRateBudget(warehouse.engine, budget_key("binance", None), config)
    today = dt.datetime.now(dt.timezone.utc).date()
    _ingest(CcxtCandleSource("binance", config, budget), warehouse, universe, "BTC/USDT", "1h", [today - dt.timedelta(days=1), today])
    _ingest(CcxtCandleSource("binance", config, budget), warehouse, universe, "ETH/USDT", "5m", [PLAIN_DAY])
    apart = budget.apart("open_interest", 10, 300.0)  # 30 s a request: its backlog shows apart from the weight budget's
    for _ in range(5):
        apart.reserve(1)
    start, _ = day_bounds_ms(PLAIN_DAY)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.insert(gaps), [
            dict(exchange="binance", symbol="ETH/USDT", timeframe="5m", start_ms=start, end_ms=start + HOUR_MS, candles=12,
                 reason="fillable", status="detected", attempts=0, detected_ms=start, updated_ms=start, note=""),
            dict(exchange="binance", symbol="ETH/USDT", timeframe="5m", start_ms=start + DAY_MS, end_ms=start + DAY_MS + HOUR_MS,
                 candles=12, reason="exchange_downtime", status="confirmed_empty", attempts=0, detected_ms=start, updated_ms=start, note=""),
            dict(exchange="binance", symbol="ETH/USDT", timeframe="5m", start_ms=start - DAY_MS, end_ms=start - DAY_MS + HOUR_MS,
                 candles=12, reason="fillable", status="filled", attempts=0, detected_ms=start, updated_ms=start, note=""),
        ])
    now_s = time.time()
    first = _samples(universe, warehouse, now_s)
    later = _samples(universe, warehouse, now_s + 90)
    btc, eth = ("binance", "BTC/USDT", "1h"), ("binance", "ETH/USDT", "5m")
    hour = HOUR_MS // 1000
    last_close = (int(now_s * 1000) // HOUR_MS * HOUR_MS) / 1000
    assert first[("ohlcv_freshness_seconds", btc)] == pytest.approx(now_s - last_close, abs=1e-3)
    assert later[("ohlcv_freshness_seconds", btc)] == pytest.approx(first[("ohlcv_freshness_seconds", btc)] + 90, abs=1e-3)
    assert first[("ohlcv_freshness_target_seconds", btc)] == 2 * (2 * hour + 10 * 60)
    assert first[("ohlcv_freshness_seconds", eth)] > first[("ohlcv_freshness_target_seconds", eth)]  # a past day: stale
    assert ("ohlcv_freshness_seconds", ("binance", "LATE/USDT", "1m")) not in first  # nothing stored
    assert ("ohlcv_freshness_target_seconds", ("binance", "LATE/USDT", "1m")) in first
    assert first[("ohlcv_gaps_open", ("binance", "5m", "fillable"))] == 1  # the filled one is closed
    assert first[("ohlcv_gap_candles_missing", ("binance", "5m", "fillable"))] == 12
    assert first[("ohlcv_gaps_open", ("binance", "5m", "downtime"))] == 1
    assert first[("ohlcv_gaps_open", ("binance", "1h", "no_trades"))] == 0
    assert first[("ohlcv_candles_written_total", ("binance", "default"))] == 288 + 24 + now_s // hour % 24
    assert first[("ohlcv_venue_requests_total", ("binance", "default"))] == _requests_served(simulator)
    assert first[("ohlcv_venue_http_429_total", ("binance", "default"))] == 0
    assert 0 <= first[("ohlcv_rate_budget_backlog_seconds", ("binance", "default"))] < 60
    assert 0 < first[("ohlcv_rate_budget_apart_backlog_seconds", ("binance", "open_interest", "default"))] <= 300
    assert [labels for metric, labels in first if metric == "ohlcv_rate_budget_backlog_seconds"] == [("binance", "default")]
    assert first[("ohlcv_warehouse_up", ())] == 1
    assert {metric for metric, _ in first} <= set(METRIC)


def test_an_unreadable_warehouse_is_reported_and_the_scrape_still_answers(universe):
    def missing():
        raise RuntimeError("no warehouse at sqlite:///nowhere.db")

    logged = []
    samples = read_samples(universe, missing, None, log=logged.append)
    assert [(s.metric, s.value) for s in samples if s.metric == "ohlcv_warehouse_up"] == [("ohlcv_warehouse_up", 0.0)]
    assert "nowhere.db" in logged[0]


def test_metric_names_follow_the_conventions():
    for metric in METRICS:
        assert metric.name.startswith("ohlcv_")
        assert metric.name.endswith("_total") == (metric.type == "counter"), metric.name
        assert set(metric.labels) <= {"venue", "symbol", "interval", "class", "check", "severity", "egress", "budget"}, metric.name


def _promtool():
    path = shutil.which("promtool")
    if path is None:
        missing_part("promtool is not installed (Debian package prometheus)")
    return path


def test_promtool_accepts_the_alert_rules_and_the_scrape_config():
    promtool = _promtool()
    rules = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def test_each_alert_fires_on_the_series_it_is_about(tmp_path):
    """promtool's rule unit tests: each alert on synthetic series, firing and not (the texts are
    compared for the stale-data alert only: the others' are dropped from the copy tested)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] != "OhlcvCandlesStale":
                del rule["annotations"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "alerts_test.yml").write_text(ALERT_TESTS)
    result = subprocess.run([_promtool(), "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


_V = 'venue="binance",egress="default",job="ohlcv",instance="m:9464"'
_I = 'venue="binance",symbol="BTC/USDT",interval="1m",job="ohlcv",instance="m:9464"'
ALERT_TESTS = f"""
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'ohlcv_freshness_seconds{{{_I}}}'
        values: '100+120x30'
      - series: 'ohlcv_freshness_target_seconds{{{_I}}}'
        values: '1500x30'
      - series: 'ohlcv_venue_http_418_total{{{_V}}}'
        values: '0 0 0 1 1 1'
      - series: 'ohlcv_venue_http_429_total{{{_V}}}'
        values: '0+2x30'
      - series: 'ohlcv_venue_requests_total{{{_V}}}'
        values: '0+10x5 50+2x25'
      - series: 'ohlcv_venue_request_errors_total{{{_V}}}'
        values: '0x5 0+2x25'
      - series: 'ohlcv_checks_failing{{venue="binance",interval="1m",check="candles_valid",severity="error",job="ohlcv",instance="m:9464"}}'
        values: '0 0 3x30'
      - series: 'ohlcv_checks_failing{{venue="binance",interval="1m",check="price_spikes",severity="warn",job="ohlcv",instance="m:9464"}}'
        values: '5x30'
      - series: 'ohlcv_daemon_heartbeat_age_seconds{{job="ohlcv",instance="m:9464"}}'
        values: '10 20 400+60x10'
      - series: 'up{{job="ohlcv",instance="m:9464"}}'
        values: '1x30'
      - series: 'ohlcv_warehouse_up{{job="ohlcv",instance="m:9464"}}'
        values: '1x30'
    alert_rule_test:
      - alertname: OhlcvCandlesStale
        eval_time: 20m
        exp_alerts:
          - exp_labels: {{severity: critical, venue: binance, symbol: BTC/USDT, interval: 1m}}
            exp_annotations:
              summary: binance BTC/USDT 1m candles are stale
              description: >-
                The newest stored 1m candle of BTC/USDT on binance closed 41m 40s ago, beyond its freshness target.
                The today schedule is not keeping it up to date: check the daemon, the latest runs of candles/1m in the
                Dagster UI, and whether the venue answers (`ohlcv-status --health`).
      - alertname: OhlcvCandlesStale
        eval_time: 14m
        exp_alerts: []
      - alertname: OhlcvVenueBanned
        eval_time: 2m
        exp_alerts: []
      - alertname: OhlcvVenueBanned
        eval_time: 4m
        exp_alerts:
          - exp_labels: {{severity: critical, venue: binance, egress: default, job: ohlcv, instance: "m:9464"}}
      - alertname: OhlcvRateLimitedSustained
        eval_time: 25m
        exp_alerts:
          - exp_labels: {{severity: warning, venue: binance, egress: default, job: ohlcv, instance: "m:9464"}}
      - alertname: OhlcvVenueUnreachable
        eval_time: 8m
        exp_alerts: []
      - alertname: OhlcvVenueUnreachable
        eval_time: 28m
        exp_alerts:
          - exp_labels: {{severity: critical, venue: binance, egress: default, job: ohlcv, instance: "m:9464"}}
      - alertname: OhlcvChecksFailing
        eval_time: 20m
        exp_alerts:
          - exp_labels: {{severity: warning, venue: binance, interval: 1m, check: candles_valid}}
      - alertname: OhlcvDaemonDown
        eval_time: 1m
        exp_alerts: []
      - alertname: OhlcvDaemonDown
        eval_time: 6m
        exp_alerts:
          - exp_labels: {{severity: critical, job: ohlcv, instance: "m:9464"}}
      - alertname: OhlcvExporterDown
        eval_time: 20m
        exp_alerts: []
"""
