"""What can be checked of the Docker topology without Docker: the production dagster.yaml on a
real PostgreSQL, and the compose file's wiring of environment, files and ports."""

import importlib
import re
from pathlib import PurePosixPath

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._config import process_config
from dagster._core.launcher import RunLauncher
from dagster_postgres import PostgresRunStorage, PostgresEventLogStorage

from ohlcv_assets_tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DAGSTER_YAML = (REPO / "deploy" / "dagster.yaml").read_text()
DAGSTER_SERVICES = ["code", "webserver", "daemon"]


def test_every_env_var_of_the_production_instance_is_set_in_each_dagster_service():
    needed = set(re.findall(r"\{env: (\w+)\}", DAGSTER_YAML)) | {"OHLCV_WAREHOUSE_URL"}
    for service in DAGSTER_SERVICES:
        assert needed <= set(COMPOSE["services"][service]["environment"]), service


def test_the_workspace_points_at_the_code_server():
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    command = COMPOSE["services"][grpc["host"]]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(grpc["port"])
    for service in ("webserver", "daemon"):
        assert "/app/deploy/workspace.yaml" in COMPOSE["services"][service]["command"]


def test_the_image_carries_the_files_compose_uses():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile
    assert "COPY deploy/workspace.yaml /app/deploy/workspace.yaml" in dockerfile
    volumes = COMPOSE["services"]["postgres"]["volumes"]
    assert any(v.startswith("./deploy/postgres-init.sql:") for v in volumes)
    assert (REPO / "deploy" / "postgres-init.sql").exists()


def test_the_production_instance_runs_on_postgres(production_home):
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)  # pooled (ohlcv_assets.defs.instance_storage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.get_ref().storage_data.class_name == "PooledPostgresStorage"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 8
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_coordinator.dequeue_use_threads and instance.run_coordinator.dequeue_num_workers == 4
        instance.add_dynamic_partitions("instruments_1m", ["binance.BTC-USDT"])
        assert instance.get_dynamic_partitions("instruments_1m") == ["binance.BTC-USDT"]


def test_the_local_instance_is_sqlite_with_modest_concurrency_and_run_retries(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
        assert instance.run_retries_enabled


def test_the_services_wait_for_the_storage_migration():
    assert COMPOSE["services"]["migrate"]["command"] == ["dagster", "instance", "migrate"]
    for service in DAGSTER_SERVICES:
        assert COMPOSE["services"][service]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name,launcher", [("celery", "CeleryRunLauncher"), ("docker", "DockerRunLauncher"), ("k8s", "K8sRunLauncher")])
def test_each_run_launcher_block_is_valid_config_of_its_launcher(name, launcher, monkeypatch):
    """The blocks of deploy/run_launchers/ name a real RunLauncher class and pass its own config
    schema once their environment variables are set (a typo in a key fails here)."""
    text = (REPO / "deploy" / "run_launchers" / f"{name}.yaml").read_text()
    for var in re.findall(r"\{env: (\w+)\}", text):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    block = yaml.safe_load(text)["run_launcher"]
    cls = getattr(importlib.import_module(block["module"]), block["class"])
    assert cls.__name__ == launcher and issubclass(cls, RunLauncher)
    result = process_config(cls.config_type(), block["config"])
    assert result.success, result.errors
    assert all(v.startswith("value-of-") for k, v in result.value.items() if isinstance(v, str) and k in ("image", "broker", "job_image"))


def test_the_celery_launcher_makes_a_production_instance(production_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DAGSTER_CELERY_BACKEND", "redis://127.0.0.1:1/1")
    (production_home / "dagster.yaml").write_text(DAGSTER_YAML + (REPO / "deploy" / "run_launchers" / "celery.yaml").read_text())
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        assert type(instance.run_launcher).__name__ == "CeleryRunLauncher"
        assert instance.run_launcher.broker == "redis://127.0.0.1:1/0" and instance.run_launcher.default_queue == "dagster"


def test_a_run_workers_instance_reuses_its_connections(production_home):
    """A run worker rebuilds the instance from its ref: its event writes reuse one held connection
    instead of opening one per statement (stock dagster-postgres outside the webserver)."""
    with dg.DagsterInstance.from_config(str(production_home)) as launcher:
        with dg.DagsterInstance.from_ref(launcher.get_ref()) as worker:
            opened = []
            sa.event.listen(worker.event_log_storage._engine, "connect", lambda *_: opened.append(1))
            for n in range(50):
                worker.report_runless_asset_event(dg.AssetObservation(asset_key="pool_probe", metadata={"n": n}))
            assert len(worker.fetch_observations(dg.AssetKey("pool_probe"), limit=100).records) == 50
            assert len(opened) <= 2  # stock: a new connection for every statement


MONITORING = {"metrics", "prometheus", "grafana"}
PROMQL_METRIC = re.compile(r"\b(ohlcv_[a-z0-9_]+)")


def _mounted(service: str) -> dict[str, str]:
    """Container path -> host file of a service's bind mounts, each checked to exist."""
    mounts = {}
    for volume in COMPOSE["services"][service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            assert (REPO / host).exists(), f"{service} mounts {host}, which does not exist"
            mounts[container] = host
    return mounts


def _dashboard() -> dict:
    import json

    return json.loads((REPO / "deploy" / "grafana" / "dashboards" / "ohlcv.json").read_text())


def test_compose_runs_the_exporter_prometheus_and_grafana_with_the_projects_files():
    from ohlcv_assets.cli.metrics import DEFAULT_PORT

    services = COMPOSE["services"]
    assert MONITORING <= set(services)
    exporter = services["metrics"]
    assert exporter["command"][0] == "ohlcv-metrics" and "ohlcv-metrics" in (REPO / "pyproject.toml").read_text()
    port = exporter["command"][exporter["command"].index("--port") + 1]
    assert {"OHLCV_WAREHOUSE_URL", "DAGSTER_PG_HOST"} <= set(exporter["environment"])  # the same warehouse and instance as Dagster
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")

    prometheus = _mounted("prometheus")
    config_path = next(arg.split("=", 1)[1] for arg in services["prometheus"]["command"] if arg.startswith("--config.file="))
    config = yaml.safe_load((REPO / prometheus[config_path]).read_text())
    for rule_file in config["rule_files"]:  # relative to the config file, inside the container
        container = str(PurePosixPath(config_path).parent / rule_file)
        assert container in prometheus, f"{rule_file} is not mounted next to the config"
        assert (REPO / prometheus[container]).resolve() == (REPO / "deploy" / "prometheus" / "rules.yml").resolve()
    [target] = [t for job in config["scrape_configs"] for static in job["static_configs"] for t in static["targets"]]
    assert target == f"metrics:{port}" and int(port) == DEFAULT_PORT

    grafana = _mounted("grafana")
    assert {"/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"} <= set(grafana)
    [datasource] = yaml.safe_load((REPO / grafana["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    [provider] = yaml.safe_load((REPO / grafana["/etc/grafana/provisioning/dashboards"] / "ohlcv.yml").read_text())["providers"]
    dashboards = grafana[provider["options"]["path"]]
    assert (REPO / dashboards / "ohlcv.json").is_file()
    assert all(panel["datasource"]["uid"] == datasource["uid"] for panel in _dashboard()["panels"])


def test_the_dashboard_and_the_alert_rules_query_only_metrics_the_exporter_serves():
    from ohlcv_assets.defs.metrics import METRIC

    dashboard = _dashboard()
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [dashboard["templating"]["list"][0]["definition"]]
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    queries += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for query in queries for name in PROMQL_METRIC.findall(query)}
    assert named and named <= set(METRIC), named - set(METRIC)
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for wanted in ("freshness heatmap", "gaps by class", "requests by venue", "429", "runs", "candles written per hour"):
        assert wanted in titles
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {"OhlcvCandlesStale", "OhlcvVenueBanned", "OhlcvRateLimitedSustained", "OhlcvVenueUnreachable",
            "OhlcvChecksFailing", "OhlcvDaemonDown"} <= set(alerts)
    assert all(rule["annotations"]["summary"] and rule["annotations"]["description"] for rule in alerts.values())
