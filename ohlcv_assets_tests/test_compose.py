"""docker-compose.yml on a shared host, checked without Docker (no daemon or compose plugin here):
the file is parsed and its ${...} expressions resolved by the compose specification's
interpolation rules, as `docker compose config` would. No default password, the simulator only in
the demo profile, the login the only published service, every variable listed in .env.example."""

import re

import pytest
import yaml

from ohlcv_assets_tests.conftest import REPO

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, $VAR; $$ is a literal $
EXPRESSION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


class MissingVariable(ValueError):
    pass


def interpolate(value, env: dict[str, str]):
    """The compose specification's interpolation of every string in the parsed file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        is_set, has_value = name in env, bool(env.get(name))
        if op in (":?", "?") and not (has_value if op == ":?" else is_set):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and not (has_value if op == ":-" else is_set):
            return arg
        if op in (":+", "+"):
            return arg if (has_value if op == ":+" else is_set) else ""
        return env.get(name, "")

    return EXPRESSION.sub(one, value)


def example_env() -> dict[str, str]:
    """.env.example's variables, every empty one filled in."""
    env = {}
    for line in ENV_EXAMPLE.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value or f"set-{name.lower()}"
    env["OHLCV_UI_PASSWORD_HASH"] = "$2a$14$abcdefghijklmnopqrstuv"
    return env


def resolved(env: dict[str, str]) -> dict:
    return interpolate(yaml.safe_load(COMPOSE_TEXT), env)


def strings(value) -> list[str]:
    """Every string value of the parsed file (what compose interpolates; comments are not)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


EXPRESSIONS = [m for text in strings(yaml.safe_load(COMPOSE_TEXT)) for m in EXPRESSION.finditer(text) if m.group(0) != "$$"]


def referenced() -> set[str]:
    return {m.group("name") or m.group("bare") for m in EXPRESSIONS}


REQUIRED = ["OHLCV_PG_ADMIN_PASSWORD", "OHLCV_PG_OWNER_PASSWORD", "OHLCV_PG_INGEST_PASSWORD", "OHLCV_PG_READER_PASSWORD",
            "OHLCV_PG_DAGSTER_PASSWORD", "OHLCV_UI_USER", "OHLCV_UI_PASSWORD_HASH", "OHLCV_GRAFANA_PASSWORD", "OHLCV_UNIVERSE_FILE"]


def test_the_interpolation_follows_the_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET ${SET:+a}${EMPTY:+b}", env) == "x d  d $SET a"
    with pytest.raises(MissingVariable, match="EMPTY is missing a value: say so"):
        interpolate("${EMPTY:?say so}", env)
    assert interpolate("${EMPTY?fine}", env) == ""


@pytest.mark.parametrize("name", REQUIRED)
def test_compose_stops_naming_each_missing_password_or_login_variable(name):
    env = example_env()
    resolved(env)  # everything set: resolves
    for missing in ({k: v for k, v in env.items() if k != name}, {**env, name: ""}):
        with pytest.raises(MissingVariable, match=f"required variable {name} is missing a value: set {name}"):
            resolved(missing)


def test_no_secret_has_a_default_and_env_example_lists_every_variable():
    listed = set(example_env())
    assert referenced() <= listed, f"not in .env.example: {sorted(referenced() - listed)}"
    for match in EXPRESSIONS:
        name = match.group("name") or ""
        if re.search(r"PASSWORD|HASH|KEY|SECRET|TOKEN", name):
            assert match.group("op") in (None, ":?") or match.group("arg") == "", f"{match.group(0)} has a default"
    assert not re.search(r"^\w*(PASSWORD|HASH|KEY)\w*=\S", ENV_EXAMPLE, re.MULTILINE), "a secret filled in in .env.example"


def test_the_login_is_the_only_published_service_on_localhost_by_default():
    services = resolved(example_env())["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published == {"proxy": ["127.0.0.1:8080:8080"]}
    assert services["proxy"]["image"].startswith("caddy:")
    mounts = dict(v.split(":")[:2] for v in services["proxy"]["volumes"] if v.startswith("./"))
    assert mounts == {"./deploy/Caddyfile": "/etc/caddy/Caddyfile", "./deploy/proxy.sh": "/etc/caddy/proxy.sh"}
    assert services["proxy"]["command"][-2:] == ["/etc/caddy/proxy.sh", "/etc/caddy/Caddyfile"]
    widened = resolved({**example_env(), "OHLCV_BIND_ADDRESS": "0.0.0.0"})["services"]["proxy"]["ports"]
    assert widened == ["0.0.0.0:8080:8080"]


def test_the_simulator_runs_only_in_the_demo_profile():
    services = resolved(example_env())["services"]
    assert services["simulator"]["profiles"] == ["demo"]
    assert [name for name, s in services.items() if "profiles" not in s and "simulator" in str(s.get("command"))] == []
    assert not any("simulator" in str(s.get("depends_on", {})) for s in services.values())


def test_each_service_connects_with_its_own_role():
    env = example_env()
    services = resolved(env)["services"]
    ingest = f"postgresql://ohlcv_ingest:{env['OHLCV_PG_INGEST_PASSWORD']}@postgres:5432/warehouse"
    for name in ("code", "webserver", "daemon"):
        assert services[name]["environment"]["OHLCV_WAREHOUSE_URL"] == ingest
        assert services[name]["environment"]["DAGSTER_PG_USER"] == "dagster"
    assert services["metrics"]["environment"]["OHLCV_READER_URL"].startswith("postgresql://ohlcv_reader:")
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "postgres"
    # the superuser's password reaches the postgres container and db-setup only
    holders = [name for name, s in services.items() if env["OHLCV_PG_ADMIN_PASSWORD"] in str(s.get("environment", ""))]
    assert sorted(holders) == ["db-setup", "postgres"]
    assert services["db-setup"]["command"] == ["ohlcv-db-setup"]
    assert services["migrate"]["depends_on"]["db-setup"] == {"condition": "service_completed_successfully"}
    # venue keys reach the code location (where runs fetch) and nothing else
    assert [n for n, s in services.items() if "POLYGON_API_KEY" in (s.get("environment") or {})] == ["code"]


def test_nothing_secret_is_baked_into_the_image():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert not re.search(r"PASSWORD|SECRET|API_KEY|TOKEN|\.env", dockerfile)
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored
    dockerignore = REPO / ".dockerignore"
    assert dockerignore.is_file() and ".env" in dockerignore.read_text().split()
