"""The least-privilege roles of a shared host (ohlcv-db-setup) on a real PostgreSQL: databases and
roles of unique names made on the test server and dropped afterwards. The ingest role backfills
through real Dagster runs against the simulator and cannot change the schema; the read-only role
reads (``load_candles``) and exports but cannot change a row or a table."""

import datetime as dt
import secrets
import uuid

import alembic.command
import alembic.config
import dagster as dg
import pytest
import sqlalchemy as sa

from ohlcv_assets import load_candles
from ohlcv_assets.cli import db_setup
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.errors import ConfigurationError
from ohlcv_assets.ops.export import export_universe
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.ops.retention import apply_retention
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.roles import DAGSTER, INGEST, OWNER, READER, ROLES, Layout, setup_database
from ohlcv_assets.warehouse.engine import HEAD_REVISION, INSUFFICIENT_PRIVILEGE, MIGRATIONS
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import normalise_url
from ohlcv_assets_tests.helpers import simulator_candles

DAYS = [dt.date(2026, 10, 7), dt.date(2026, 10, 8)]


@pytest.fixture
def roles(postgres_server_url):
    """(layout, passwords, urls) of freshly set-up roles and databases, all dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    layout = Layout(owner=f"t_owner_{suffix}", ingest=f"t_ingest_{suffix}", reader=f"t_reader_{suffix}",
                    dagster=f"t_dagster_{suffix}", warehouse_db=f"t_wh_{suffix}", dagster_db=f"t_dg_{suffix}")
    passwords = {kind: secrets.token_hex(12) for kind in ROLES}
    try:
        yield layout, passwords, setup_database(postgres_server_url, passwords, layout)
    finally:
        admin = sa.create_engine(normalise_url(postgres_server_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for database in (layout.warehouse_db, layout.dagster_db):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            for kind in ROLES:
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {layout.role(kind)}")
        admin.dispose()


def denied(url: str, statement: str) -> str:
    """Runs ``statement``; the permission error's message (fails the test if it was allowed)."""
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except sa.exc.ProgrammingError as err:
        assert err.orig.sqlstate == INSUFFICIENT_PRIVILEGE, err
        return str(err.orig)
    finally:
        engine.dispose()
    pytest.fail(f"allowed: {statement}")


def backfill(universe_file, universe, url: str, interval: str, days, instance) -> None:
    """Real Dagster runs of the candles asset, one per day, writing with ``url``."""
    defs = build_definitions(str(universe_file), url)
    sync_instrument_partitions(instance, universe)
    for day in days:
        result = dg.materialize([defs.get_assets_def(candles_key(interval))], partition_key=partition_key("binance.BTC-USDT", day),
                                instance=instance, resources=defs.resources)
        assert result.success


def partitions_of(url: str) -> dict[str, str]:
    engine = sa.create_engine(normalise_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT tablename, tableowner FROM pg_tables WHERE tablename LIKE 'candles\\_%'")).all()
    engine.dispose()
    return dict(rows)


def test_the_ingest_role_backfills_end_to_end_and_cannot_change_the_schema(roles, simulator, universe_file, universe, instance):
    layout, _, urls = roles
    assert not any(name.startswith("candles_1m") for name in partitions_of(urls[OWNER]))  # created by the runs below
    backfill(universe_file, universe, urls[INGEST], "1m", DAYS, instance)
    backfill(universe_file, universe, urls[INGEST], "1h", DAYS, instance)
    warehouse = Warehouse(urls[INGEST])
    for interval in ("1m", "1h"):
        for day in DAYS:
            expected = simulator_candles(simulator, "BTC/USDT", interval, day, now_ms())
            assert warehouse.read_candles("binance", "BTC/USDT", interval, *day_bounds_ms(day)).equals(expected), (interval, day)
    warehouse.dispose()
    # the partitions the runs needed were made through ohlcv_create_partition: owned by the owner
    made = partitions_of(urls[OWNER])
    assert {"candles_1m", "candles_1m_2026_10", "candles_1h_2026"} <= set(made)
    assert {made["candles_1m"], made["candles_1m_2026_10"]} == {layout.owner}

    for statement in ("DROP TABLE candles", "DROP TABLE candles_1m_2026_10", "TRUNCATE candles", "DROP TABLE alembic_version",
                      "ALTER TABLE candles ADD COLUMN x int", "CREATE TABLE mine (x int)",
                      "CREATE TABLE candles_1m_2027_01 PARTITION OF candles_1m FOR VALUES FROM (1798761600000) TO (1801440000000)"):
        message = denied(urls[INGEST], statement)
        assert "permission denied" in message or "must be owner" in message, message
    # the function makes candle partitions only
    engine = sa.create_engine(normalise_url(urls[INGEST]))
    with pytest.raises(sa.exc.ProgrammingError, match="not a partitioned candle table"), engine.begin() as conn:
        conn.execute(sa.text("SELECT ohlcv_create_partition('alembic_version', 'alembic_version_x', 'x', NULL, NULL)"))
    with pytest.raises(sa.exc.ProgrammingError, match="not a partition name"), engine.begin() as conn:
        conn.execute(sa.text("SELECT ohlcv_create_partition('candles_1m', 'gaps', NULL, 0, 1)"))
    with pytest.raises(sa.exc.ProgrammingError, match="not a time partition"), engine.begin() as conn:
        conn.execute(sa.text("SELECT ohlcv_drop_partition('candles_1m')"))  # a whole interval: no
    engine.dispose()
    # retention retires a month of 1m candles as the ingest role (through ohlcv_drop_partition)
    retaining = parse_universe(universe_file.read_text() + "retention: {1m: {keep_days: 30, requires: []}}\n", str(universe_file))
    warehouse = Warehouse(urls[INGEST])
    outcomes = apply_retention(retaining, warehouse, dt.datetime.now(dt.timezone.utc).date(), now_ms())
    warehouse.dispose()
    assert [(o.interval, o.action, o.candles) for o in outcomes] == [("1m", "dropped", 2 * 1440)]
    left = partitions_of(urls[OWNER])
    assert "candles_1m_2026_10" not in left and "candle_features_1m_2026_10" not in left and "candles_1h_2026" in left
    # Dagster's storage is a database of its own: neither warehouse role may connect to it
    for kind in (INGEST, READER):
        url = sa.make_url(normalise_url(urls[kind])).set(database=layout.dagster_db)
        engine = sa.create_engine(url)
        with pytest.raises(sa.exc.OperationalError, match="permission denied for database"):
            engine.connect().close()
        engine.dispose()


def test_the_read_only_role_loads_and_exports_but_changes_nothing(roles, simulator, universe_file, universe, instance,
                                                                   tmp_path, monkeypatch):
    _, _, urls = roles
    backfill(universe_file, universe, urls[INGEST], "1h", DAYS, instance)
    start, end = day_bounds_ms(DAYS[0])[0], day_bounds_ms(DAYS[-1])[1]
    # load_candles opens the reader's URL from the settings (OHLCV_READER_URL), not the pipeline's
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("OHLCV_READER_URL", urls[READER])
    frame = load_candles("binance", "BTC/USDT", "1h", start, end)
    assert len(frame) == 48 and frame["open_time"].tolist() == list(range(start, end, 3_600_000))

    reader = Warehouse(urls[READER])
    try:
        first = export_universe(universe, reader, tmp_path / "export", now_ms())
        assert first.files_written >= 1 and first.rows_written >= 48
        assert all((tmp_path / "export" / path).is_file() for path in first.written)
        again = export_universe(universe, reader, tmp_path / "export", now_ms())
        assert again.files_written == 0 and again.files_unchanged == first.files_written  # its bookkeeping was recorded
    finally:
        reader.dispose()

    for statement in ("INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume, fetched_at) "
                      "VALUES ('x', 'X/Y', '1h', 0, 1, 1, 1, 1, 1, 0)",
                      "DELETE FROM candles", "UPDATE candles SET close = 0", "TRUNCATE candles", "DROP TABLE candles",
                      "DELETE FROM candles_1h_2026", "DROP TABLE candles_1h_2026", "DELETE FROM gaps", "CREATE TABLE mine (x int)",
                      "SELECT ohlcv_create_partition('candles_1h', 'candles_1h_2030', NULL, 0, 1)"):
        message = denied(urls[READER], statement)
        assert "permission denied" in message or "must be owner" in message, message


def test_setup_is_idempotent_and_sets_changed_passwords(roles, postgres_server_url):
    layout, passwords, _ = roles
    admin = sa.create_engine(normalise_url(postgres_server_url))

    def stored_passwords():
        with admin.connect() as conn:
            return dict(conn.execute(sa.text("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(:names)"),
                                     {"names": [layout.role(k) for k in ROLES]}).all())

    before = stored_passwords()
    rotated = {**passwords, READER: secrets.token_hex(12)}
    urls = setup_database(postgres_server_url, rotated, layout)
    after = stored_passwords()
    assert after[layout.reader] != before[layout.reader]
    with admin.connect() as conn:
        flags = conn.execute(sa.text("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = ANY(:n)"),
                             {"n": [layout.role(k) for k in ROLES]}).scalars().all()
    admin.dispose()
    assert flags == [False] * 4
    assert Warehouse(urls[OWNER]).schema_revision() == HEAD_REVISION
    assert sa.make_url(urls[DAGSTER]).database == layout.dagster_db


def test_a_schema_behind_the_code_is_migrated_only_by_the_owner(roles, monkeypatch, capsys):
    _, _, urls = roles
    owner = sa.create_engine(normalise_url(urls[OWNER]))
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with owner.begin() as conn:  # the schema as it was before 0014 (Alembic undoes 0014 and later)
        config.attributes["connection"] = conn
        alembic.command.downgrade(config, "0013")
        assert conn.exec_driver_sql("SELECT to_regprocedure('ohlcv_create_partition(text, text, text, bigint, bigint)')").scalar() is None
    owner.dispose()
    ingest = Warehouse(urls[INGEST])
    with pytest.raises(ConfigurationError, match="schema revision 0013, this code needs .* owner") as caught:
        ingest.open_and_migrate()
    assert sa.make_url(urls[INGEST]).password not in str(caught.value)
    monkeypatch.setenv("OHLCV_OWNER_URL", urls[OWNER])
    assert db_setup.main(["--migrate"]) == 0
    printed = capsys.readouterr().out
    assert "t_owner_" in printed and sa.make_url(urls[OWNER]).password not in printed
    ingest.open_and_migrate()  # at the head again: nothing to do, no error
    assert ingest.schema_revision() == HEAD_REVISION
    ingest.dispose()


def test_db_setup_refuses_to_run_without_every_password(monkeypatch, capsys):
    monkeypatch.setenv("OHLCV_ADMIN_URL", "postgresql://postgres@127.0.0.1:1/postgres")
    for name in db_setup.PASSWORD_ENVS.values():
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("OHLCV_PG_READER_PASSWORD")
    assert db_setup.main([]) == 2
    assert "OHLCV_PG_READER_PASSWORD not set" in capsys.readouterr().err
