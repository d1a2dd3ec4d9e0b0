"""End to end with the real thing: Debian's Prometheus scrapes the exporter (`ohlcv-metrics`, its own
process) with the project's scrape config and alert rules (intervals and `for:` shortened), while an
ingestion against the simulator meets injected 429s; then nothing more is ingested and the test
asks Prometheus's HTTP API for the series and the alerts."""

import datetime as dt
import os
import shutil
import time

import pytest
import requests
import yaml

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.core.intervals import now_ms
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import PLAIN_DAY
from ohlcv_assets_tests.processes import free_port, missing_part, running, wait_until
from ohlcv_assets.simulator.client import read_stats

pytestmark = pytest.mark.e2e

SCRAPE_SECONDS = 1


def prometheus_files(directory, exporter_port: int) -> str:
    """The project's prometheus.yml and rules.yml, scraping the exporter on loopback every second,
    evaluating every second, every alert's `for:` at 1 s; returns the config's path."""
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    (directory / "rules.yml").write_text(yaml.safe_dump(rules))
    config["global"] = {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"}
    config["rule_files"] = [str(directory / "rules.yml")]
    [job] = config["scrape_configs"]
    job["scrape_timeout"] = f"{SCRAPE_SECONDS}s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    return str(directory / "prometheus.yml")


class PrometheusApi:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return [a for a in answer["data"]["alerts"] if a["labels"]["alertname"] == name]


def _ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=10).status_code == 200  # a scrape on a busy machine may take seconds
    except requests.RequestException:
        return False


def test_prometheus_scrapes_the_exporter_and_the_stale_data_alert_fires(simulator, universe_file, universe, postgres_url, tmp_path):
    server = shutil.which("prometheus")
    if server is None:
        missing_part("prometheus is not installed (Debian package prometheus)")
    warehouse = Warehouse(postgres_url)
    warehouse.migrate()
    home = tmp_path / "dagster_home"
    home.mkdir()
    exporter_port, prometheus_port = free_port(), free_port()
    env = {**os.environ, "OHLCV_WAREHOUSE_URL": postgres_url, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file)}
    prometheus_args = ["-c", "import os, sys; os.execv(sys.argv[1], sys.argv[1:])", server,
                       f"--config.file={prometheus_files(tmp_path, exporter_port)}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{prometheus_port}"]
    api = PrometheusApi(f"http://127.0.0.1:{prometheus_port}")
    with running(["-m", "ohlcv_assets.cli.metrics", "--host", "127.0.0.1", "--port", str(exporter_port)], env, tmp_path,
                 tmp_path / "exporter.log"), \
         running(prometheus_args, env, tmp_path, tmp_path / "prometheus.log"):
        try:
            wait_until(lambda: _ready(f"http://127.0.0.1:{exporter_port}/metrics"), 60, 0.2, "the exporter")
            wait_until(lambda: _ready(f"{api.url}/-/ready"), 30, 0.2, "prometheus")

            # A short ingestion: yesterday's and today's 1m BTC/USDT (fresh) meets two 429s; a past day of 5m ETH/USDT (stale).
            simulator.reconfigure({"faults": [{"kind": "rate_limit", "count": 2}]})
            source = CcxtCandleSource("binance", universe.exchanges["binance"])
            today = dt.datetime.now(dt.timezone.utc).date()
            for symbol, interval, days in [("BTC/USDT", "1m", [today - dt.timedelta(days=1), today]), ("ETH/USDT", "5m", [PLAIN_DAY])]:
                instrument = next(i for i in universe.instruments if i.symbol == symbol)
                for _ in ingest_days(source, warehouse, instrument, interval, days, now_ms()):
                    pass
            served = read_stats(simulator.url)
            assert served["status.429"] == 2
            requests_served = sum(n for name, n in served.items() if name.startswith("requests."))

            # The ingestion is over: nothing more is fetched, the venue's counters stay, freshness rises.
            venue = 'venue="binance",egress="default"'
            wait_until(lambda: api.value(f"ohlcv_venue_requests_total{{{venue}}}") == requests_served, 20, 0.5,
                       "the requests counter in Prometheus")
            assert api.value(f"ohlcv_venue_http_429_total{{{venue}}}") == served["status.429"]
            assert api.value(f"ohlcv_venue_http_418_total{{{venue}}}") == 0
            assert api.value(f"ohlcv_candles_written_total{{{venue}}}") > 288
            btc = 'ohlcv_freshness_seconds{venue="binance",symbol="BTC/USDT",interval="1m"}'
            first = api.value(btc)
            assert first is not None and 0 <= first < api.value(btc.replace("freshness", "freshness_target"))
            time.sleep(3 * SCRAPE_SECONDS + 1)
            later = api.value(btc)
            assert later - first == pytest.approx(3 * SCRAPE_SECONDS + 1, abs=2 * SCRAPE_SECONDS + 0.5)  # one scrape's age either way
            assert api.value('ohlcv_warehouse_up') == 1 and api.value('up{job="ohlcv"}') == 1

            # The past day is stale: its alert goes pending then firing; the fresh instrument has none.
            stale = wait_until(lambda: [a for a in api.alerts("OhlcvCandlesStale") if a["state"] == "firing"], 20, 0.5,
                               "OhlcvCandlesStale firing")
            assert [(a["labels"]["symbol"], a["labels"]["interval"]) for a in stale] == [("ETH/USDT", "5m")]
            assert "ETH/USDT" in stale[0]["annotations"]["summary"]
            # No daemon runs beside this test's instance: the daemon alert fires too.
            wait_until(lambda: [a for a in api.alerts("OhlcvDaemonDown") if a["state"] in ("pending", "firing")], 20, 0.5,
                       "OhlcvDaemonDown")
            assert not api.alerts("OhlcvVenueBanned")
        except BaseException:
            for log in ("exporter.log", "prometheus.log"):
                print(f"--- {log}\n" + (tmp_path / log).read_text()[-3000:])
            raise
        finally:
            warehouse.dispose()
