"""The production instance storage (``instance_storage.PooledPostgresStorage``) writes a run's
planned events in one batch, a step's batch of check evaluations in one transaction, and each
other check evaluation in one transaction; what it stores, and what Dagster reads back from it,
must be what stock dagster-postgres stores."""

import re

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetKeyTable, SqlEventLogStorageTable
from dagster._serdes import deserialize_value

from ohlcv_assets.defs.dagster_internals import log_check_evaluations, log_materializations
from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG
from ohlcv_assets.warehouse.urls import normalise_url

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-13")
KEYS = DAYS.get_partition_keys()
CHECKS = ["positive", "complete"]


def toy_asset(fail: bool) -> dg.AssetsDefinition:
    """A partitioned asset with two partitioned checks, run over a range as the candles are: its
    materializations, then its check evaluations, logged as event batches of half the range each."""

    @dg.multi_asset(specs=[dg.AssetSpec("toy", partitions_def=DAYS)], partitions_def=DAYS, can_subset=True,
                    check_specs=[dg.AssetCheckSpec(name, asset="toy", partitions_def=DAYS) for name in CHECKS],
                    backfill_policy=dg.BackfillPolicy.single_run())
    def toy(context: dg.AssetExecutionContext):
        if fail:
            raise dg.Failure("the toy fails", allow_retries=False)
        keys = context.partition_keys
        for half in (keys[:len(keys) // 2], keys[len(keys) // 2:]):
            log_materializations(context, [dg.AssetMaterialization("toy", partition=key) for key in half])
            yield from log_check_evaluations(context, [
                dg.AssetCheckEvaluation(asset_key=dg.AssetKey("toy"), check_name=name, passed=key != KEYS[3], partition=key)
                for key in half for name in CHECKS])

    return toy


@dg.asset(code_version="1", check_specs=[dg.AssetCheckSpec("positive", asset="toy_whole")])
def toy_whole():
    """Unpartitioned, its check too."""
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="positive", passed=True)])


@dg.op
def unplanned_check(context: dg.OpExecutionContext):
    """A check evaluation the run did not plan (an external check): its execution row is inserted."""
    context.log_event(dg.AssetCheckEvaluation(asset_key=dg.AssetKey("toy_whole"), check_name="external", passed=False))


@dg.job
def unplanned_check_job():
    unplanned_check()


def stock_home(tmp_path, url):
    parsed = sa.make_url(url)
    home = tmp_path / "stock"
    home.mkdir()
    home.joinpath("dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {"postgres_db": {
        "username": parsed.username, "password": parsed.password or "", "hostname": parsed.host, "port": parsed.port,
        "db_name": parsed.database, "scheme": "postgresql+psycopg2"}}}}))
    return home


def stored_rows(url: str, run_id: str, asset: str = "toy") -> dict:
    """What a run left in the event log, the check executions and the asset keys, without ids and
    timestamps; each check row's event resolved through its storage id."""
    engine = sa.create_engine(normalise_url(url))
    with engine.connect() as conn:
        events = conn.execute(sa.select(SqlEventLogStorageTable.c.id, SqlEventLogStorageTable.c.dagster_event_type,
                                        SqlEventLogStorageTable.c.asset_key, SqlEventLogStorageTable.c.partition,
                                        SqlEventLogStorageTable.c.event)
                              .where(SqlEventLogStorageTable.c.run_id == run_id)
                              .where(SqlEventLogStorageTable.c.dagster_event_type.like("ASSET_%"))).all()
        checks = conn.execute(sa.select(AssetCheckExecutionsTable).where(AssetCheckExecutionsTable.c.run_id == run_id)).all()
        last_run = conn.execute(sa.select(AssetKeyTable.c.last_run_id).where(AssetKeyTable.c.asset_key == dg.AssetKey(asset).to_string())).scalar()
    engine.dispose()
    by_id = {row.id: row for row in events}

    def body(serialized: str):
        """The event's type and data; the checked materialization's ids and time, which differ
        between two instances, only as whether it is named."""
        entry = deserialize_value(serialized)
        data = repr(entry.dagster_event.event_specific_data)
        return entry.dagster_event.event_type_value, re.sub(r"AssetCheckEvaluationTargetMaterializationData\([^)]*\)", "<named>", data)

    return {
        "events": sorted((row.dagster_event_type, row.asset_key, row.partition or "", body(row.event)[1]) for row in events),
        "checks": sorted((row.asset_key, row.check_name, row.partition, row.execution_status, repr(body(row.evaluation_event)),
                          by_id[row.evaluation_event_storage_id].dagster_event_type,
                          by_id[row.materialization_event_storage_id].dagster_event_type if row.materialization_event_storage_id else "")
                         for row in checks),
        "last_run_id_is_the_run": last_run == run_id,
    }


def run_toy(home, fail: bool) -> tuple[str, dict, dict]:
    """A ranged run of every day of the toy; (run id, each partition's status, the calls to the storage)."""
    calls = {"store_event": 0, "store_event_batch": 0, "_update_asset_check_evaluation": 0}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        for name in calls:
            original = getattr(storage, name)

            def counted(*args, _name=name, _original=original, **kwargs):
                calls[_name] += 1
                return _original(*args, **kwargs)
            setattr(storage, name, counted)
        result = dg.materialize([toy_asset(fail)], instance=instance, raise_on_error=False,
                                tags={RANGE_START_TAG: KEYS[0], RANGE_END_TAG: KEYS[-1]})
        status = instance.get_status_by_partition(dg.AssetKey("toy"), KEYS, DAYS)
    return result.run_id, {key: str(value) for key, value in status.items()}, calls


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_planned_events_and_check_evaluations_store_what_stock_dagster_postgres_stores(fail, production_home, postgres_url,
                                                                                        new_postgres_database, tmp_path):
    ours, our_url = production_home, postgres_url
    stock_url = new_postgres_database()
    stock = stock_home(tmp_path, stock_url)
    for home in (ours, stock):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.upgrade()

    our_run, our_status, our_calls = run_toy(ours, fail)
    stock_run, stock_status, stock_calls = run_toy(stock, fail)

    assert our_status == stock_status
    expected = "AssetPartitionStatus.FAILED" if fail else "AssetPartitionStatus.MATERIALIZED"
    assert set(our_status.values()) == {expected}
    ours_stored, stock_stored = stored_rows(our_url, our_run), stored_rows(stock_url, stock_run)
    assert ours_stored == stock_stored
    assert ours_stored["last_run_id_is_the_run"]
    planned = [e for e in ours_stored["events"] if e[0] == "ASSET_MATERIALIZATION_PLANNED"]
    assert len(planned) == len(KEYS)
    statuses = {(c[1], c[2]): c[3] for c in ours_stored["checks"]}
    assert len(statuses) == len(CHECKS) * len(KEYS)
    if fail:
        assert set(statuses.values()) == {"PLANNED"}  # the run ended before any evaluation, as stock leaves them
    else:
        assert statuses[("positive", KEYS[3])] == "FAILED" and statuses[("complete", KEYS[0])] == "SUCCEEDED"
    # stock: planned events and check evaluations one by one (a batch of evaluations falls back);
    # ours: the planned events in one batch, each half's check evaluations in one (materialization
    # batches both write as batches)
    assert our_calls["store_event_batch"] == (1 if fail else 5)
    planned_one_by_one = len(KEYS) + len(CHECKS)
    assert our_calls["store_event"] == stock_calls["store_event"] - planned_one_by_one - (0 if fail else len(KEYS) * len(CHECKS))
    # stock: each check evaluation's execution row written by a second transaction; ours: never
    assert our_calls["_update_asset_check_evaluation"] == 0
    assert stock_calls["_update_asset_check_evaluation"] == (0 if fail else len(KEYS) * len(CHECKS))

    runs = {}
    for name, home in (("ours", ours), ("stock", stock)):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs[name] = dg.materialize([toy_whole], instance=instance).run_id
            runs[f"{name} unplanned"] = unplanned_check_job.execute_in_process(instance=instance).run_id
    whole = stored_rows(our_url, runs["ours"], "toy_whole")
    assert whole == stored_rows(stock_url, runs["stock"], "toy_whole")
    assert [(c[1], c[2], c[3], c[6]) for c in whole["checks"]] == [("positive", None, "SUCCEEDED", "ASSET_MATERIALIZATION")]
    unplanned = stored_rows(our_url, runs["ours unplanned"], "toy_whole")
    assert unplanned["checks"] == stored_rows(stock_url, runs["stock unplanned"], "toy_whole")["checks"]
    assert [(c[1], c[2], c[3], c[5]) for c in unplanned["checks"]] == [("external", None, "FAILED", "ASSET_CHECK_EVALUATION")]
