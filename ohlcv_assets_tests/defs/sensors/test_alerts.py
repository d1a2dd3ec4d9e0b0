"""Alerts reach a webhook (a local HTTP receiver here), once per incident."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from ohlcv_assets.ops.alerts import LISTED_IN_SUMMARY, SEPARATE_ALERTS_MAX, incident_alerts
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.defs.monitoring import instrument_rows, stale_instruments
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.defs.resources.alerts import AlertResource
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import PLAIN_DAY, merge_candles, simulator_candles, universe_yaml


@pytest.fixture
def receiver():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_run_that_failed_for_good_is_alerted_once(simulator, tmp_path, receiver, instance):
    url, received = receiver
    path = tmp_path / "u.yaml"
    path.write_text(universe_yaml(simulator.url, "  - {exchange: binance, symbol: DOGE/USDT, intervals: [1h], start: 2026-10-01}"))
    sync_instrument_partitions(instance, parse_universe(path.read_text()))
    defs = build_definitions(str(path), f"sqlite:///{tmp_path / 'w.db'}")
    result = dg.materialize([defs.get_assets_def(candles_key("1h"))], partition_key=partition_key("binance.DOGE-USDT", PLAIN_DAY),
                            instance=instance, resources=defs.resources, raise_on_error=False)
    [failure] = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event_type == dg.DagsterEventType.RUN_FAILURE]
    sensor = defs.get_sensor_def("alert_on_run_failure")
    context = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance,
                                                 dagster_run=result.dagster_run, resources={"alerts": AlertResource(webhook_url=url)})
    sensor(context)
    [alert] = received
    assert alert["text"].startswith("*Run failed") and "does not list 'DOGE/USDT'" in alert["text"]


def test_stale_instruments_alert_once_and_recover_once(simulator, universe_file, tmp_path, receiver, instance):
    url, received = receiver
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    wh = Warehouse(warehouse_url)
    wh.migrate()
    start, end = day_bounds_ms(PLAIN_DAY)
    merge_candles(wh, "binance", "BTC/USDT", "1h", simulator_candles(simulator, "BTC/USDT", "1h", PLAIN_DAY, end), start, end, 1)
    defs = build_definitions(str(universe_file), warehouse_url)
    sensor = defs.get_sensor_def("alert_on_quality")
    resources = {"warehouse": defs.resources["warehouse"], "alerts": AlertResource(webhook_url=url)}

    def tick(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs) as context:
            sensor(context)
            return context.cursor

    cursor = tick(None)
    assert [a["text"] for a in received] == ["*Data quality incident*\nstale: binance BTC/USDT 1h (last candle 2026-10-08T23:00:00Z)"]
    universe, now = parse_universe(universe_file.read_text()), now_ms()
    assert stale_instruments(universe, wh, now) == [
        {k: row[k] for k in ("exchange", "symbol", "interval", "last_candle")}
        for row in instrument_rows(universe, wh, None, now) if row["freshness"] == "stale"]
    cursor = tick(cursor)
    assert len(received) == 1  # one alert per incident, not one per tick
    today = dt.datetime.now(dt.timezone.utc).date()
    start, end = day_bounds_ms(today)
    merge_candles(wh, "binance", "BTC/USDT", "1h", simulator_candles(simulator, "BTC/USDT", "1h", today, end), start, end, 1)
    tick(cursor)
    assert received[-1]["text"].startswith("*Resolved*") and len(received) == 2
    wh.dispose()


def test_many_incidents_at_once_are_one_alert_that_counts_them():
    few = [f"check failed: candles/1m candles_valid 2026-10-{d:02d}|binance.BTC-USDT" for d in range(1, SEPARATE_ALERTS_MAX + 1)]
    assert incident_alerts("Resolved", few) == [("Resolved", [incident]) for incident in sorted(few)]
    many = [f"check failed: candles/1m candles_valid 2026-10-01|binance.S{n:04d}-USDT" for n in range(7335)]
    [(title, lines)] = incident_alerts("Data quality incident", many)
    assert title == "Data quality incident: 7335"
    assert lines[:LISTED_IN_SUMMARY] == sorted(many)[:LISTED_IN_SUMMARY]
    assert lines[-1] == f"… and {7335 - LISTED_IN_SUMMARY} more (ohlcv-status lists them)"
