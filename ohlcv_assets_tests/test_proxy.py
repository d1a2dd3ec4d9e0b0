"""The login in front of the UI: deploy/Caddyfile, started by deploy/proxy.sh (as the compose `proxy`
service starts it) with Debian's caddy, in front of the production processes of test_production
(a real dagster-webserver, daemon and code server on PostgreSQL). Without credentials the UI and
/graphql answer 401; with them a backfill is launched and followed through the proxy's GraphQL, and
headless Chromium shows the partitions green through it, its websocket traffic passing."""

import base64
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ohlcv_assets.cli.dagster_api import DagsterApiError, graphql, launch_backfill, wait_for_backfills, wait_for_webserver
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port, missing_part, running, wait_until
from ohlcv_assets_tests.e2e.test_production import DAYS, check_ui_in_browser, names, partition_stats, production_topology

CADDYFILE = REPO / "deploy" / "Caddyfile"
PROXY_SH = REPO / "deploy" / "proxy.sh"
USER = "operator"


def caddy() -> str:
    path = shutil.which("caddy")
    if path is None:
        missing_part("Debian's caddy is not installed (scripts/test.sh installs it as root)")
    return path


def bcrypt_hash(password: str) -> str:
    return subprocess.run([caddy(), "hash-password", "--plaintext", password], check=True, capture_output=True,
                          text=True).stdout.strip()


def proxy_env(tmp_path: Path, port: int, upstream: str, **login: str) -> dict[str, str]:
    home = tmp_path / "caddy-home"  # Caddy's autosave and storage, not the user's
    home.mkdir(exist_ok=True)
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))},
            "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home),
            "OHLCV_SITE_ADDRESS": f":{port}", "OHLCV_UI_UPSTREAM": upstream, **login}


PROXY_ARGS = ["-c", "import os, sys; os.execv(sys.argv[1], sys.argv[1:])", "/bin/sh", str(PROXY_SH), str(CADDYFILE)]


@contextlib.contextmanager
def running_proxy(tmp_path: Path, upstream: str, user: str, password_hash: str):
    """deploy/proxy.sh on a free port in front of ``upstream``; yields its URL once it answers."""
    port = free_port()
    env = proxy_env(tmp_path, port, upstream, OHLCV_UI_USER=user, OHLCV_UI_PASSWORD_HASH=password_hash)
    with running(PROXY_ARGS, env, str(tmp_path), str(tmp_path / "proxy.log")) as proxy:
        url = f"http://127.0.0.1:{port}"

        def answers():
            assert proxy.poll() is None, (tmp_path / "proxy.log").read_text()[-2000:]
            try:
                return requests.get(url, timeout=5).status_code == 401
            except requests.ConnectionError:
                return False
        wait_until(answers, 60, interval=0.3, what="the proxy")
        yield url


@pytest.mark.parametrize("login", [{}, {"OHLCV_UI_USER": USER}, {"OHLCV_UI_PASSWORD_HASH": "$2a$14$" + "x" * 53},
                                   {"OHLCV_UI_USER": USER, "OHLCV_UI_PASSWORD_HASH": "a plain password"}])
def test_the_proxy_refuses_to_start_without_a_login(login, tmp_path):
    caddy()
    env = proxy_env(tmp_path, free_port(), "127.0.0.1:1", **login)
    result = subprocess.run([sys.executable, *PROXY_ARGS], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    missing = [n for n in ("OHLCV_UI_USER", "OHLCV_UI_PASSWORD_HASH") if n not in login]
    expected = f"{missing[0]} is not set" if missing else "OHLCV_UI_PASSWORD_HASH is not a bcrypt hash"
    assert expected in result.stderr, result.stderr
    assert "a plain password" not in result.stderr + result.stdout


@pytest.mark.e2e
@pytest.mark.daemon
def test_the_ui_behind_the_proxy_needs_the_login_and_keeps_working(tmp_path, new_postgres_database, monkeypatch):
    password = secrets.token_urlsafe(16)
    with production_topology(tmp_path, new_postgres_database, monkeypatch) as topology:
        upstream = topology["webserver"].removeprefix("http://")
        with running_proxy(tmp_path, upstream, USER, bcrypt_hash(password)) as proxy:
            # nothing without the login: the UI, GraphQL (the UI's API: launching backfills,
            # wiping materializations), its websocket, a wrong password
            for method, path, headers in [("GET", "/", {}), ("GET", "/assets/candles/1h", {}), ("POST", "/graphql", {}),
                                          ("GET", "/graphql", {"Connection": "Upgrade", "Upgrade": "websocket",
                                                               "Sec-WebSocket-Version": "13",
                                                               "Sec-WebSocket-Key": base64.b64encode(b"0" * 16).decode()})]:
                answer = requests.request(method, proxy + path, headers=headers, json={"query": "{ version }"}, timeout=30)
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert answer.headers["WWW-Authenticate"].startswith("Basic")
            assert requests.post(f"{proxy}/graphql", json={"query": "{ version }"}, auth=(USER, "wrong"), timeout=30).status_code == 401
            with pytest.raises(DagsterApiError, match="answered 401") as refused:
                graphql(proxy, "{ version }", {})
            assert password not in str(refused.value)

            # with it, everything the UI does: GraphQL queries and mutations, backfills run by the daemon
            logged_in = proxy.replace("http://", f"http://{USER}:{password}@")
            wait_for_webserver(logged_in, timeout_seconds=60)
            assert graphql(logged_in, "{ version }", {})["version"]
            with running(topology["daemon"], topology["env"], str(REPO), str(tmp_path / "daemon.log")):
                backfill = launch_backfill(logged_in, ["candles", "1h"], names(DAYS), title="through the proxy")
                assert wait_for_backfills(logged_in, [backfill], timeout_seconds=400) == {backfill: "COMPLETED_SUCCESS"}
            stats = partition_stats(logged_in)
            assert stats["numMaterialized"] >= len(names(DAYS)) and stats["numFailed"] == 0
            frames = check_ui_in_browser(proxy, stats["numMaterialized"], credentials=(USER, password),
                                         screenshot=REPO / "artifacts" / "ui-behind-proxy.png")
            graphql_sockets = [url for url in frames if url.startswith(proxy.replace("http", "ws")) and url.endswith("/graphql")]
            assert graphql_sockets and all(frames[url] > 0 for url in graphql_sockets), frames
        log = (tmp_path / "proxy.log").read_text()
        assert password not in log and "Basic " not in log  # the login never reaches the proxy's log
