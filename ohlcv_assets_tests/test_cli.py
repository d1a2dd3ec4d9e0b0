"""The README's command-line paths, as a user runs them on a fresh Dagster instance without the
daemon: register the universe, materialize one partition with Dagster's own CLI, backfill a range
of days with `ohlcv backfill`; bad input is a clear error with a non-zero exit."""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from ohlcv_assets.cli.ohlcv import main as ohlcv_main
from ohlcv_assets.intervals import day_bounds_ms, now_ms
from ohlcv_assets.monitoring import failing_checks
from ohlcv_assets.names import candles_key
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY, simulator_candles

BIN = os.path.dirname(sys.executable)


def run(args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_register_materialize_and_backfill_from_a_fresh_instance(simulator, universe_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != "OHLCV_WAREHOUSE_URL"}
    env.update({"DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file)})

    registered = run([f"{BIN}/ohlcv", "register"], env, tmp_path)
    assert registered.returncode == 0, registered.stderr[-2000:]
    assert "instruments_1m: added binance.BTC-USDT, binance.ETH-USDT, binance.LATE-USDT" in registered.stdout

    one = run([f"{BIN}/dagster", "asset", "materialize", "-m", "ohlcv_assets.definitions", "--select", "candles/1m",
               "--partition", f"{PLAIN_DAY}|binance.BTC-USDT"], env, tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]

    first, last = PLAIN_DAY - dt.timedelta(days=2), PLAIN_DAY
    ranged = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.ETH-USDT", str(first), str(last)], env, tmp_path)
    assert ranged.returncode == 0, ranged.stdout[-2000:] + ranged.stderr[-2000:]
    assert "succeeded, 3 partitions, 4,320 candles written" in ranged.stdout
    after = PLAIN_DAY + dt.timedelta(days=1)
    every = run([f"{BIN}/ohlcv", "backfill", "1m", "all", str(after)], env, tmp_path)
    assert every.returncode == 0, every.stdout[-2000:] + every.stderr[-2000:]
    for key, candles in (("binance.BTC-USDT", "1,440"), ("binance.ETH-USDT", "1,440"), ("binance.LATE-USDT", "0")):
        assert re.search(rf"candles/1m {key} {after}..{after}: run \S+ succeeded, 1 partitions, {candles} candles written",
                         every.stdout), (key, every.stdout[-2000:])
    assert "candles/1m: 3 instruments, 2,880 candles written, every run succeeded" in every.stdout

    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")  # the documented default: beside the instance
    try:
        for symbol, days in (("BTC/USDT", [PLAIN_DAY, after]), ("ETH/USDT", [first, first + dt.timedelta(days=1), last, after])):
            for day in days:
                stored = warehouse.read_candles("binance", symbol, "1m", *day_bounds_ms(day))
                assert stored.equals(simulator_candles(simulator, symbol, "1m", day, now_ms())), (symbol, day)
    finally:
        warehouse.dispose()
    assert not (tmp_path / "warehouse.db").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialized = instance.get_materialized_partitions(candles_key("1m"))
    assert {f"{PLAIN_DAY}|binance.BTC-USDT", f"{first}|binance.ETH-USDT", f"{last}|binance.ETH-USDT"} <= materialized

    status = run([f"{BIN}/ohlcv-status", "--json"], env, tmp_path)
    assert status.returncode == 0, status.stderr[-2000:]


def test_a_downtime_day_backfilled_from_the_command_line_turns_green_once_scanned(simulator, universe, universe_file,
                                                                                 postgres_url, tmp_path):
    """Without the daemon: `ohlcv backfill` of a day with exchange downtime leaves its completeness
    failing (nothing explains the missing candles yet); the gap scan run with Dagster's own CLI
    confirms the downtime and evaluates the day's checks again, so the latest evaluation passes."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": postgres_url}
    filled = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT", str(DOWNTIME_DAY)], env, tmp_path)
    assert filled.returncode == 0, filled.stdout[-2000:] + filled.stderr[-2000:]
    pk = f"{DOWNTIME_DAY}|binance.BTC-USDT"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert failing_checks(instance, universe, "1m") == {"completeness": [pk]}
    scanned = run([f"{BIN}/dagster", "asset", "materialize", "-m", "ohlcv_assets.definitions", "--select", "gap_report/1m",
                   "--partition", "binance.BTC-USDT"], env, tmp_path)
    assert scanned.returncode == 0, scanned.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert failing_checks(instance, universe, "1m") == {}
        [info] = instance.event_log_storage.get_asset_check_partition_info(
            [dg.AssetCheckKey(candles_key("1m"), "completeness")], partition_keys=[pk])
        assert info.latest_execution_status.value == "SUCCEEDED" and info.is_current


def _cli_env(universe_file, postgres_url, tmp_path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": postgres_url}


def _empty_answers(*window_starts: int, count: int) -> dict:
    """Binance klines answered 200 with `[]` for requests starting at these instants."""
    return {"faults": [{"kind": "empty", "count": count, "start_between": [t, t + 1]} for t in window_starts]}


def test_empty_answers_between_candles_are_asked_again_and_the_days_end_exact(simulator, universe_file, postgres_url, tmp_path):
    """Two requests in the middle of a three-day run answered 200 with `[]` (candles before and
    after them): each is asked again after a pause, and every day is stored exactly."""
    env = _cli_env(universe_file, postgres_url, tmp_path)
    first, last = PLAIN_DAY - dt.timedelta(days=2), PLAIN_DAY
    start = day_bounds_ms(first)[0]
    page = 1000 * 60_000  # the request windows of a ranged run: 1000 candles of 1m from the first day's start
    simulator.reconfigure(_empty_answers(start + page, start + 3 * page, count=1))
    filled = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT", str(first), str(last)], env, tmp_path)
    assert filled.returncode == 0, filled.stdout[-2000:] + filled.stderr[-2000:]
    assert "succeeded, 3 partitions, 4,320 candles written" in filled.stdout and "INCOMPLETE" not in filled.stdout
    assert simulator.stats["requests.klines"] >= 5 + 2  # five windows, two asked again
    warehouse = Warehouse(postgres_url)
    try:
        for day in (first, first + dt.timedelta(days=1), last):
            stored = warehouse.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(day))
            assert stored.equals(simulator_candles(simulator, "BTC/USDT", "1m", day, now_ms())), day
        assert gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m") == []  # nothing confirmed empty
    finally:
        warehouse.dispose()


def test_a_day_left_incomplete_by_an_empty_answer_is_named_and_fails_unless_allowed(simulator, universe_file, postgres_url,
                                                                                    tmp_path):
    """The last request of a one-day run answered `[]`: no candle after it, so nothing to judge it
    by. The day is not a plain success: the closing line names it, the exit status is 1 (0 with
    --allow-incomplete), and a fillable gap record holds its missing candles for the gap loop."""
    env = _cli_env(universe_file, postgres_url, tmp_path)
    day = PLAIN_DAY - dt.timedelta(days=3)
    start, end = day_bounds_ms(day)
    simulator.reconfigure(_empty_answers(start + 1000 * 60_000, count=2))
    partial = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT", str(day)], env, tmp_path)
    assert partial.returncode == 1, partial.stdout[-2000:] + partial.stderr[-2000:]
    named = f"1 day(s) INCOMPLETE, missing candles the exchange answered empty at the edge of the run, recorded as gaps to fill: " \
            f"{day}|binance.BTC-USDT (440 of 1,440 candles)"
    assert named in partial.stdout, partial.stdout[-2000:]
    allowed = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT", str(day), "--allow-incomplete"], env, tmp_path)
    assert allowed.returncode == 0 and named in allowed.stdout and "(allowed by --allow-incomplete)" in allowed.stdout, \
        allowed.stdout[-2000:] + allowed.stderr[-2000:]
    warehouse = Warehouse(postgres_url)
    try:
        [gap] = gap_records.due_for_backfill(warehouse, now_ms(), 10, "1m")
        assert (gap.start_ms, gap.end_ms, gap.reason, gap.status) == (start + 1000 * 60_000, end, "fillable", "detected")
    finally:
        warehouse.dispose()


def test_bad_backfill_arguments_are_clear_errors(universe_file, tmp_path, monkeypatch):
    """The installed command exits non-zero with the message on stderr; the other cases call its
    main() in this process (the same code, without a Python start-up each)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file)}
    out = run([f"{BIN}/ohlcv", "backfill", "3m", "binance.BTC-USDT", "2026-10-08"], env, tmp_path)
    assert out.returncode != 0 and "interval '3m' is not in the universe" in out.stderr, out.stderr[-1000:]
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("OHLCV_UNIVERSE", str(universe_file))
    for args, message in (
        (["backfill", "1m", "binance.DOGE-USDT", "2026-10-08"], "instrument 'binance.DOGE-USDT' is not in the universe"),
        (["backfill", "5m", "binance.BTC-USDT", "2026-10-08"], "is not configured for 5m"),
        (["backfill", "1m", "binance.BTC-USDT", "2026-10-08", "2026-10-01"], "first before last"),
        (["backfill", "1m", "binance.BTC-USDT,binance.DOGE-USDT", "2026-10-08"], "instrument 'binance.DOGE-USDT' is not in the universe"),
        (["backfill", "1m", "binance.ETH-USDT", "2026-09-30"], "days of binance.ETH-USDT must run from 2026-10-01"),
        (["backfill", "1d", "all", "2026-09-01", "2026-09-30"], "no instrument of the universe has 1d candles from 2026-09-01"),
    ):
        with pytest.raises(SystemExit) as exit_:
            ohlcv_main(args)
        assert exit_.value.code != 0 and message in str(exit_.value.code), (args, exit_.value.code)



def test_a_broken_universe_is_named_by_every_cli(tmp_path):
    broken = tmp_path / "universe.yaml"
    broken.write_text("exchanges:\n  binance: {ccxt_id: binance}\ninstruments:\n"
                      "  - {exchange: binance, symbol: BTC/USDT, intervals: [7m], start: 2026-10-01}\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "OHLCV_UNIVERSE": str(broken)}
    for command in (["ohlcv", "register"], ["ohlcv-status"]):
        out = run([f"{BIN}/{command[0]}", *command[1:]], env, tmp_path)
        assert out.returncode == 2, out.stderr[-1000:]
        assert out.stderr.startswith(f"{command[0]}: {broken}: instruments[0] (binance BTC/USDT)"), out.stderr[-1000:]
        assert "Traceback" not in out.stderr
