"""Shared fixtures: a real simulator over HTTP, real warehouses (SQLite and PostgreSQL), a universe."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.instance_storage import storage_env
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import normalise_url
from ohlcv_assets_tests.helpers import SIMULATOR_CONFIG, universe_yaml
from ohlcv_assets_tests.processes import TAG_ENV, missing_part, stop_leftovers

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL_ENV = "OHLCV_TEST_POSTGRES_URL"


SESSION_TAG = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # this process's (each xdist worker's) test session


def pytest_collection_modifyitems(items):
    """The e2e tests (``dagster dev``, the daemon, the demo: minutes each, the rest seconds) first: they
    start first and run beside the short tests instead of leaving one worker alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


MEMORY_DIR = Path("/dev/shm")  # tmpfs on Linux
MEMORY_MIN_FREE = 2 << 30


def temporary_files_in_memory() -> str | None:
    """Unless ``TMPDIR`` is set: the tests' temporary files (``tmp_path``, ``dg.instance_for_test``,
    the Dagster homes and SQLite warehouses of the processes they start) go to a directory on tmpfs,
    when there is one with room. Dagster's SQLite storages and the SQLite warehouses commit (fsync)
    hundreds of times per test: on this machine type's disk a commit waits ~15 ms, on tmpfs 0.1 ms,
    and the disk serialises them across workers. Set here, before pytest picks its base directory
    and before xdist starts the workers, which inherit it. Returns the directory chosen, if any."""
    if os.environ.get("TMPDIR") or not MEMORY_DIR.is_dir():
        return None
    try:
        stats = os.statvfs(MEMORY_DIR)
        if stats.f_bavail * stats.f_frsize < MEMORY_MIN_FREE:
            return None
        root = MEMORY_DIR / f"ohlcv-tests-{os.getuid()}"
        root.mkdir(exist_ok=True)
        root.chmod(0o755)  # the PostgreSQL servers the tests start run as `postgres` under it, as root
    except OSError:
        return None
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    return str(root)


def alembic_scripts_read_once() -> None:
    """Alembic reads and executes every revision script of a migration directory each time a
    ``ScriptDirectory`` is made (``ScriptDirectory.from_config``): Dagster does it for each storage
    of each ``dg.instance_for_test`` (about 60 scripts; half of the fixture's CPU), the warehouse for
    each migration. The scripts do not change during a test session: here one ``ScriptDirectory``
    per directory serves every later call in this process (the migrations themselves still run,
    each on its own database). Processes the tests start are not affected."""
    from alembic.script import ScriptDirectory

    if getattr(ScriptDirectory.from_config, "read_once", False):
        return
    made = ScriptDirectory.from_config.__func__
    cache: dict[tuple, ScriptDirectory] = {}

    def from_config(cls, config):
        key = (cls, config.get_main_option("script_location"), config.get_main_option("version_locations"),
               config.get_main_option("sourceless"), config.get_main_option("file_template"))
        if key not in cache:
            cache[key] = made(cls, config)
        return cache[key]

    from_config.read_once = True
    ScriptDirectory.from_config = classmethod(from_config)


NO_COMPUTE_LOGS = {"compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}}


def dagster_test_instances_copied() -> None:
    """``dg.instance_for_test()`` (no overrides, no directory given) makes its SQLite storages (runs,
    event log index, schedules: ``create_all`` and Alembic's stamp for each) anew for every test:
    ~0.12 CPU-s and 0.5 s of a loaded machine. Here the first call in this process makes them as
    Dagster does, in a directory kept as the template; every later call starts from a copy of it
    (0.02 CPU-s): the same files Dagster made, each test its own directory and instance. These
    instances keep no compute logs (``NO_COMPUTE_LOGS``): Dagster's local manager starts two
    ``tail -F`` and two Python watchers for every step (0.05 CPU-s a step in those processes, and
    the wait for them to end), and no test reads them; the processes the tests start (``dagster
    dev``, the daemon, the CLIs) keep their configured manager."""
    import dagster
    import dagster._core.instance_for_test as module

    if getattr(module.instance_for_test, "copied", False):
        return
    made = module.instance_for_test
    template: list[str] = []

    @contextlib.contextmanager
    def instance_for_test(overrides=None, set_dagster_home=True, temp_dir=None, **kwargs):
        if temp_dir is not None or overrides:
            with made(overrides, set_dagster_home, temp_dir, **kwargs) as instance:
                yield instance
            return
        if not template:
            directory = tempfile.mkdtemp(prefix="dagster-instance-template-")
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            with made(NO_COMPUTE_LOGS, temp_dir=directory) as instance:
                instance.get_runs(limit=1)
            os.remove(os.path.join(directory, "dagster.yaml"))  # each call writes its own
            template.append(directory)
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as directory:
            shutil.copytree(template[0], directory, dirs_exist_ok=True)
            with made(NO_COMPUTE_LOGS, set_dagster_home, directory, **kwargs) as instance:
                yield instance

    instance_for_test.copied = True
    module.instance_for_test = instance_for_test
    dagster.instance_for_test = instance_for_test


KEPT_ENGINES = 64  # the instances' run, schedule and event log index files, and the event logs of recent runs


def dagster_sqlite_engines_kept() -> None:
    """Dagster's SQLite storages make a new SQLAlchemy engine for every connection they open (one
    per event stored, and per run, schedule or ``has_table`` query): a new engine has an empty
    statement cache, so each statement is compiled again each time. Under py-spy, storing events
    was two thirds of the main thread in ``test_perp_series.py``'s archive tests, half of it making
    engines and compiling. Here those storages get the engine they had for the same file and
    options (the last ``KEPT_ENGINES``): the same SQL, and still a new connection each time (their
    ``NullPool``), only compiled once. Processes the tests start are not affected."""
    import collections
    import threading

    from dagster._core.storage.event_log.sqlite import consolidated_sqlite_event_log, sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.schedules.sqlite import sqlite_schedule_storage
    from sqlalchemy.pool import NullPool

    modules = (sqlite_event_log, consolidated_sqlite_event_log, sqlite_run_storage, sqlite_schedule_storage)
    if getattr(sqlite_event_log.create_engine, "kept", False):
        return
    made = sqlite_event_log.create_engine
    engines: collections.OrderedDict = collections.OrderedDict()
    lock = threading.Lock()

    def create_engine(url, **kwargs):
        if kwargs.get("poolclass") is not NullPool or set(kwargs) - {"poolclass", "connect_args"}:
            return made(url, **kwargs)
        key = (str(url), tuple(sorted((kwargs.get("connect_args") or {}).items())))
        with lock:
            engine = engines.pop(key, None) or made(url, **kwargs)
            engines[key] = engine
            while len(engines) > KEPT_ENGINES:
                engines.popitem(last=False)
        return engine

    create_engine.kept = True
    for module in modules:
        module.create_engine = create_engine


def pytest_configure(config):
    temporary_files_in_memory()
    alembic_scripts_read_once()
    dagster_test_instances_copied()
    dagster_sqlite_engines_kept()
    _signals_at_their_defaults()


def _signals_at_their_defaults():
    """Started as a background job (CI), the tests have SIGINT ignored. Dagster's in-process execution
    (``dg.materialize`` on the main thread) restores SIGINT's handler when it ends and copies it onto
    SIGTERM (``dagster._utils.interrupts.setup_interrupt_handlers``): SIGTERM becomes ignored too, and
    every process started afterwards inherits that. The compute-log ``tail -F`` of a later run in a
    thread then ignored the SIGTERM meant to stop it and outlived the tests. Python's own SIGINT
    handler instead, which a child does not inherit (and SIGTERM at its default)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Processes started from here on carry the test's id (``processes.TAG_ENV``)."""
    os.environ[TAG_ENV] = f"{SESSION_TAG} {item.nodeid}"


@pytest.fixture(autouse=True)
def _e2e_test_left_nothing_running(request):
    """An e2e test stops what it started even when it fails (a demo killed at its timeout leaves its
    servers, in their own process groups, behind): checked after each, the rest at the session's end."""
    yield
    if request.node.get_closest_marker("e2e") is None:
        return
    left = stop_leftovers(SESSION_TAG, os.getpid(), test=request.node.nodeid)
    if left:
        pytest.fail("processes started by the test still alive after it (now killed):\n"
                    + "\n".join(f"  {pid} {what}" for pid, what in sorted(left.items())), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_running():
    """After the last test of the session (of each xdist worker), once every other fixture is torn
    down: no process a test started is still alive. Any that is is killed, and named here."""
    yield
    left = stop_leftovers(SESSION_TAG, os.getpid())
    if left:
        pytest.fail("processes started by the tests still alive after the session (now killed):\n"
                    + "\n".join(f"  {pid} {what}" for pid, what in sorted(left.items())), pytrace=False)


@pytest.fixture(scope="session")
def simulators():
    """The one way tests start a simulator (real HTTP on 127.0.0.1): ``simulators(config)`` is the
    simulator of that configuration, started the first time a test asks for it and stopped at the
    end of the session."""
    started: dict[str, ExchangeSimulator] = {}

    def simulator_for(config: dict) -> ExchangeSimulator:
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in started:
            started[key] = ExchangeSimulator(SimulatorConfig.from_mapping(config))
            started[key].start()
        return started[key]

    yield simulator_for
    for sim in started.values():
        sim.stop()


@pytest.fixture(scope="session")
def simulator(simulators):
    """The default simulator (``helpers.SIMULATOR_CONFIG``), reset before each test that uses it."""
    return simulators(SIMULATOR_CONFIG)


@pytest.fixture(autouse=True)
def _reset_simulator(request):
    """Each test starts with no faults, a fresh budget, real time and zeroed counters."""
    if "simulator" in request.fixturenames:
        sim = request.getfixturevalue("simulator")
        sim.reconfigure({"faults": [], "weight_limit": SIMULATOR_CONFIG["weight_limit"], "weight_window_seconds": 60,
                         "ban_seconds": SIMULATOR_CONFIG["ban_seconds"], "max_ban_seconds": None, "hold_grace_seconds": 0.25,
                         "frozen_now_ms": None, "reset_stats": True})
    yield


@pytest.fixture
def universe_file(simulator, tmp_path):
    path = tmp_path / "universe.yaml"
    path.write_text(universe_yaml(simulator.url))
    return path


@pytest.fixture
def universe(universe_file):
    return parse_universe(universe_file.read_text(), str(universe_file))


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def defs(universe, universe_file, warehouse_url, instance):
    """The code location for the test universe, its instruments registered in the test instance."""
    sync_instrument_partitions(instance, universe)
    return build_definitions(str(universe_file), warehouse_url)


@pytest.fixture(scope="session")
def postgres_server_url():
    """A PostgreSQL server: OHLCV_TEST_POSTGRES_URL, else one started here from the local binaries.

    Under CI the tests that need it fail rather than skip when none can be had.
    """
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        yield url
        return
    parent = tempfile.mkdtemp(prefix="ohlcv-pg-")
    os.chmod(parent, 0o755)  # the server may run as `postgres`
    data_dir = os.path.join(parent, "data")
    script = str(REPO / "scripts" / "postgres.sh")
    env = {**os.environ, TAG_ENV: f"{SESSION_TAG} session fixture postgres_server_url"}  # not the first test's: it outlives it
    result = subprocess.run([script, "start", data_dir], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        missing_part(f"no PostgreSQL for the tests (set {POSTGRES_URL_ENV}): {result.stderr.strip()}")
    yield result.stdout.strip().splitlines()[-1]
    subprocess.run([script, "stop", data_dir], capture_output=True)
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def freqtrade_python():
    """The python of freqtrade 2026.9's own virtual environment (``scripts/freqtrade-venv.sh``: built
    once per checkout; ``scripts/test.sh`` starts the build before the tests, and this waits for it).
    freqtrade is only ever run as a subprocess of it, so its exact pins never constrain ours."""
    result = subprocess.run([str(REPO / "scripts" / "freqtrade-venv.sh")], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        missing_part(f"freqtrade's virtual environment could not be built (scripts/freqtrade-venv.sh): {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def new_postgres_database(postgres_server_url):
    """Makes fresh, empty databases on the test server; all are dropped afterwards."""
    admin = sa.create_engine(normalise_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    created = []

    def create() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        created.append(name)
        return sa.make_url(normalise_url(postgres_server_url)).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture
def postgres_url(new_postgres_database):
    return new_postgres_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path):
    """The same tests against both warehouse backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def warehouse(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    yield wh
    wh.dispose()


@pytest.fixture
def production_home(tmp_path, postgres_url, monkeypatch):
    """A DAGSTER_HOME with the production ``deploy/dagster.yaml``, its storage in ``postgres_url``."""
    for key, value in storage_env(postgres_url).items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "production_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    return home
