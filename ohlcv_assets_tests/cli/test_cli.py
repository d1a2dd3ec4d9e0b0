"""The README's command-line paths, as a user runs them on a fresh Dagster instance without the
daemon: register the universe, materialize one partition with Dagster's own CLI, backfill a range
of days with `ohlcv backfill`; bad input is a clear error with a non-zero exit."""

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import dagster as dg
import pytest

from ohlcv_assets.cli.demo import failed_runs
from ohlcv_assets.cli.ohlcv import main as ohlcv_main
from ohlcv_assets.cli.status import main as status_main
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.monitoring import failing_checks
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY, simulator_candles, universe_yaml
from ohlcv_assets_tests.processes import wait_until

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


def test_a_backfill_of_all_runs_its_instruments_at_once_on_postgresql(simulator, universe_file, production_home,
                                                                       new_postgres_database, tmp_path):
    """On PostgreSQL (warehouse and Dagster's storage) `ohlcv backfill ... all` runs its instruments'
    runs in worker processes at once (--parallel 2): the runs overlap in time, each is recorded in
    the instance, and every day is stored exactly."""
    warehouse_url = new_postgres_database()
    env = {**os.environ, "DAGSTER_HOME": str(production_home), "OHLCV_UNIVERSE": str(universe_file),
           "OHLCV_WAREHOUSE_URL": warehouse_url}
    migrated = run([f"{BIN}/dagster", "instance", "migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    first, last = PLAIN_DAY - dt.timedelta(days=2), PLAIN_DAY
    filled = run([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT,binance.ETH-USDT", str(first), str(last), "--parallel", "2"],
                 env, tmp_path)
    assert filled.returncode == 0, filled.stdout[-2000:] + filled.stderr[-2000:]
    assert "candles/1m: 2 instruments, 8,640 candles written, every run succeeded" in filled.stdout
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        records = instance.get_run_records()
        assert len(records) == 2 and all(r.dagster_run.is_success for r in records)
        (start_a, end_a), (start_b, end_b) = ((r.start_time, r.end_time) for r in records)
    assert start_a < end_b and start_b < end_a, "the two runs did not overlap"
    warehouse = Warehouse(warehouse_url)
    try:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            for day in (first, first + dt.timedelta(days=1), last):
                stored = warehouse.read_candles("binance", symbol, "1m", *day_bounds_ms(day))
                assert stored.equals(simulator_candles(simulator, symbol, "1m", day, now_ms())), (symbol, day)
    finally:
        warehouse.dispose()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []


def test_sigterm_ends_a_parallel_backfill_and_its_workers_at_once(simulator, universe_file, production_home,
                                                                  new_postgres_database, tmp_path):
    """SIGTERM to `ohlcv backfill ... --parallel 2` while both instruments' runs are in flight (the
    venue slowed): the command exits 143 within seconds, not after its runs, and none of its worker
    processes is left alive."""
    warehouse_url = new_postgres_database()
    env = {**os.environ, "DAGSTER_HOME": str(production_home), "OHLCV_UNIVERSE": str(universe_file),
           "OHLCV_WAREHOUSE_URL": warehouse_url}
    assert run([f"{BIN}/dagster", "instance", "migrate"], env, tmp_path).returncode == 0
    simulator.reconfigure({"faults": [{"kind": "slow", "endpoint": "klines", "every": 1, "seconds": 1.5}]})
    command = subprocess.Popen([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT,binance.ETH-USDT", "2026-10-01", "2026-10-20",
                                "--parallel", "2"], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(production_home)) as instance:
            def both_started():
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                return len(runs) == 2
            wait_until(both_started, 120, interval=0.2, what="both runs started")
        workers = _children(command.pid)
        assert len(workers) >= 2, workers
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=10) == 143
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), 10, interval=0.2,
                   what="the worker processes to end")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)


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


def closed_port() -> int:
    """A port nothing listens on (bound once by the system's choice, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step_attempts(home) -> list[int]:
    """Per run of the instance: how many times its step started (1: no step retry)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [len(instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)) for r in instance.get_runs()]


def test_hopeless_errors_fail_the_first_attempt_with_the_cause_on_the_closing_line(simulator, tmp_path):
    """Nothing listening at the venue, a symbol the venue does not list, a warehouse URL with an
    unknown scheme or nothing listening at it: no retry can heal them, so the run fails on its first
    attempt (one step start, no step retries: the warehouse cases took a minute of them before) and
    run retries (on in dagster.yaml) will not relaunch it; the cause is ``ohlcv backfill``'s closing
    line, and the failure Dagster's own CLI prints."""
    venue_port, warehouse_port = closed_port(), closed_port()
    venue_down = tmp_path / "venue_down.yaml"
    venue_down.write_text(universe_yaml(f"http://127.0.0.1:{venue_port}"))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(universe_yaml(simulator.url, "  - {exchange: binance, symbol: DOGE/USDT, intervals: [1m], start: 2026-10-01}\n"))
    good = tmp_path / "universe.yaml"
    good.write_text(universe_yaml(simulator.url))
    cases = [  # command, universe, warehouse URL (None: the default), what the cause says
        ("ohlcv", venue_down, None, f"binance: no venue answers at http://127.0.0.1:{venue_port}/api/v3 (connection refused)"),
        ("ohlcv", unknown, None, "binance (binance) does not list 'DOGE/USDT'"),
        ("dagster", good, "sqllite:///" + str(tmp_path / "w.db"), f"warehouse URL sqllite:///{tmp_path / 'w.db'}: unknown scheme 'sqllite'"),
        ("dagster", good, f"postgresql://postgres@127.0.0.1:{warehouse_port}/ohlcv",
         f"no warehouse answers at postgresql+psycopg://postgres@127.0.0.1:{warehouse_port}/ohlcv (connection refused)"),
    ]
    for n, (command, universe, url, cause) in enumerate(cases):
        home = tmp_path / f"home{n}"
        home.mkdir()
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {k: v for k, v in os.environ.items() if k != "OHLCV_WAREHOUSE_URL"}
        env.update({"DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe), **({"OHLCV_WAREHOUSE_URL": url} if url else {})})
        if command == "ohlcv":
            instrument = "binance.DOGE-USDT" if universe == unknown else "binance.BTC-USDT"
            out = run([f"{BIN}/ohlcv", "backfill", "1m", instrument, str(PLAIN_DAY)], env, tmp_path)
            closing = out.stdout.strip().splitlines()[-1]
            assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
            assert closing.startswith(f"candles/1m: 1 instruments, 0 candles written, 1 runs FAILED ({instrument} {PLAIN_DAY}..{PLAIN_DAY}: ")
            assert cause in closing, closing
        else:
            assert run([f"{BIN}/ohlcv", "register"], {**env, "OHLCV_WAREHOUSE_URL": ""}, tmp_path).returncode == 0
            out = run([f"{BIN}/dagster", "asset", "materialize", "-m", "ohlcv_assets.definitions", "--select", "candles/1m",
                       "--partition", f"{PLAIN_DAY}|binance.BTC-USDT"], env, tmp_path)
            assert out.returncode == 1 and f"Failure: {cause}" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
        assert step_attempts(home) == [1], cause
        with dg.DagsterInstance.from_config(str(home)) as instance:  # nor will run retries (dagster.yaml) relaunch it
            [failed] = instance.get_runs()
            assert failed.tags.get("dagster/retry_on_asset_or_op_failure") == "false"
            assert failed.tags.get("dagster/will_retry") == "false"


def test_a_configuration_error_is_one_line_from_every_cli(tmp_path, monkeypatch, capsys):
    """A missing API key (a universe error), an unknown warehouse scheme, nothing listening at the
    warehouse: each command says so in one line, exit status 2, no traceback, before it starts
    anything (the demo: no simulator, no Dagster). The installed commands run as subprocesses for
    the first case and the demo; the rest call their main() in this process (the same code)."""
    missing_key = tmp_path / "universe.yaml"
    missing_key.write_text("exchanges:\n  polygon: {venue: polygon, api_key_env: OHLCV_TEST_UNSET_KEY}\ninstruments:\n"
                           "  - {exchange: polygon, symbol: AAPL, intervals: [1m], start: 2026-10-01}\n")
    crypto = tmp_path / "crypto.yaml"
    crypto.write_text(universe_yaml(f"http://127.0.0.1:{closed_port()}"))
    port = closed_port()
    mains = {"ohlcv": ohlcv_main, "ohlcv-status": status_main}
    for n, (extra, message) in enumerate((
        ({"OHLCV_UNIVERSE": str(missing_key)}, "the API key variable OHLCV_TEST_UNSET_KEY is not set"),
        ({"OHLCV_UNIVERSE": str(crypto), "OHLCV_WAREHOUSE_URL": "sqllite:///w.db"},
         "warehouse URL sqllite:///w.db: unknown scheme 'sqllite'"),
        ({"OHLCV_UNIVERSE": str(crypto), "OHLCV_WAREHOUSE_URL": f"postgresql://postgres@127.0.0.1:{port}/ohlcv"},
         f"no warehouse answers at postgresql+psycopg://postgres@127.0.0.1:{port}/ohlcv (connection refused)"),
    )):
        home = tmp_path / f"home{n}"
        home.mkdir()
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {**{k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "OHLCV_TEST_UNSET_KEY")},
               **extra, "DAGSTER_HOME": str(home)}
        for command in (["ohlcv", "backfill", "1m", "all", str(PLAIN_DAY)], ["ohlcv-status"],
                        ["ohlcv-demo", "--once", "--home", str(tmp_path / f"demo{n}"), "--port", str(closed_port())]):
            if n == 0 or command[0] == "ohlcv-demo":
                out = run([f"{BIN}/{command[0]}", *command[1:]], env, tmp_path)
                code, stderr = out.returncode, out.stderr
            else:
                monkeypatch.delenv("OHLCV_WAREHOUSE_URL", raising=False)
                for key, value in {**extra, "DAGSTER_HOME": str(home)}.items():
                    monkeypatch.setenv(key, value)
                code, stderr = mains[command[0]](command[1:]), capsys.readouterr().err
            assert code == 2 and "Traceback" not in stderr, (command, stderr[-2000:])
            [line] = stderr.strip().splitlines()
            assert line.startswith(f"{command[0]}: ") and message in line, (command, line)
        assert not (tmp_path / f"demo{n}" / "dagster_home" / "simulator.log").exists()
        if n == 1:  # the health report names it beside the other parts
            assert status_main(["--health"]) == 1 and f"warehouse                FAIL {message}" in capsys.readouterr().out


def test_the_demo_closes_with_why_its_runs_failed(universe, universe_file, instance, tmp_path):
    """The demo's closing line names the cause of each failed run of this demo (not older ones)."""
    before = dt.datetime.now(dt.timezone.utc)
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), "sqllite:///" + str(tmp_path / "w.db"))
    for day in (PLAIN_DAY, PLAIN_DAY + dt.timedelta(days=1)):
        dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=f"{day}|binance.BTC-USDT", instance=instance,
                       resources=defs.resources, raise_on_error=False)
    cause = f"warehouse URL sqllite:///{tmp_path / 'w.db'}: unknown scheme 'sqllite' (expected postgresql://user@host:port/database or sqlite:////absolute/path.db)"
    assert failed_runs(instance, before) == {cause: 2}
    assert failed_runs(instance, dt.datetime.now(dt.timezone.utc)) == {}


def test_a_backfill_started_in_the_background_can_still_be_terminated(simulator, universe_file, tmp_path, monkeypatch):
    """A background job starts with SIGINT ignored; Dagster's in-process execution copies SIGINT's
    handler onto SIGTERM when it ends, so `ohlcv backfill` ignored `kill` (and so did every process
    it started) after its first run, until sigterm_kept put SIGTERM's handler back."""
    import signal

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("OHLCV_UNIVERSE", str(universe_file))
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    interrupt, terminate = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert ohlcv_main(["backfill", "1h", "binance.BTC-USDT", str(PLAIN_DAY)]) == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, terminate)
