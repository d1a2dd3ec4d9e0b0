"""Shared fixtures: a real simulator over HTTP, real warehouses (SQLite and PostgreSQL), a universe."""

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.instance_storage import storage_env
from ohlcv_assets.partitions import sync_instrument_partitions
from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
from ohlcv_assets.universe import parse_universe
from ohlcv_assets.warehouse.store import Warehouse, normalise_url
from ohlcv_assets_tests.helpers import SIMULATOR_CONFIG, universe_yaml
from ohlcv_assets_tests.processes import missing_part

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL_ENV = "OHLCV_TEST_POSTGRES_URL"


# The tests that run `dagster dev` (or several Dagster processes) take minutes each, the rest seconds:
# started first, they run beside the short tests instead of leaving one worker alone at the end.
LONG_MODULES = ("test_demo.py", "test_production.py", "test_archive_daemon.py", "test_gap_daemon.py",
                "test_all_venues_demo.py", "test_celery.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: (LONG_MODULES.index(item.path.name) if item.path.name in LONG_MODULES else len(LONG_MODULES)))


@pytest.fixture(scope="session")
def simulator():
    sim = ExchangeSimulator(SimulatorConfig.from_mapping(SIMULATOR_CONFIG))
    sim.start()
    yield sim
    sim.stop()


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
    result = subprocess.run([script, "start", data_dir], capture_output=True, text=True)
    if result.returncode != 0:
        missing_part(f"no PostgreSQL for the tests (set {POSTGRES_URL_ENV}): {result.stderr.strip()}")
    yield result.stdout.strip().splitlines()[-1]
    subprocess.run([script, "stop", data_dir], capture_output=True)
    shutil.rmtree(parent, ignore_errors=True)


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
