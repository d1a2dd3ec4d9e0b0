"""Where the warehouse is: resolved here and nowhere else, so that the definitions, the demo,
``ohlcv-status`` and the ``ohlcv`` CLI always read and write the same database.

``OHLCV_WAREHOUSE_URL`` when set; otherwise SQLite in ``$DAGSTER_HOME/warehouse.db`` (the Dagster
instance and its warehouse side by side); without ``DAGSTER_HOME``, ``./warehouse.db``.

One URL per database role (docs/security.md): the pipeline writes with ``OHLCV_WAREHOUSE_URL`` (the
ingest role), the readers (``load_candles``, the metrics exporter ``ohlcv-metrics``) read with
``OHLCV_READER_URL`` (the read-only role) and migrations run with ``OHLCV_OWNER_URL`` (the owner);
each falls back to ``OHLCV_WAREHOUSE_URL`` (one role for everything, as on a laptop).

Paths are resolved where the user typed them: ``resolve_environment`` turns a relative universe
path, SQLite path, ``DAGSTER_HOME`` or archive cache into absolute ones against the caller's working
directory, before a command starts any other process (``dagster dev`` runs its code location
elsewhere), and refuses what cannot work (a missing universe file, a SQLite file whose directory
does not exist). No Dagster here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ohlcv_assets.core.errors import ConfigurationError

WAREHOUSE_URL_ENV = "OHLCV_WAREHOUSE_URL"
READER_URL_ENV = "OHLCV_READER_URL"
OWNER_URL_ENV = "OHLCV_OWNER_URL"
INGEST, READER, OWNER = "ingest", "reader", "owner"
ROLE_URL_ENVS = {INGEST: WAREHOUSE_URL_ENV, READER: READER_URL_ENV, OWNER: OWNER_URL_ENV}
EGRESS_ADDRESS_ENV = "OHLCV_EGRESS_ADDRESS"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
WAREHOUSE_FILE = "warehouse.db"
UNIVERSE_ENV = "OHLCV_UNIVERSE"
ARCHIVE_CACHE_ENV = "OHLCV_ARCHIVE_CACHE"


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL as written (None: not SQLite, or in memory). Read from the
    text (``sqlite:///relative.db``, ``sqlite:////absolute.db``, a ``?query`` after it), as
    SQLAlchemy reads it, without importing SQLAlchemy."""
    scheme, separator, rest = url.partition("://")
    if not scheme.startswith("sqlite") or not separator:
        return None
    database = rest.removeprefix("/").split("?", 1)[0]
    return database if database and database != ":memory:" and not database.startswith("file:") else None


def resolve_sqlite_url(url: str, cwd: Path | None = None) -> str:
    """A SQLite URL with its file made absolute against ``cwd`` (default: the working directory);
    any other URL unchanged."""
    database = sqlite_path(url)
    if database is None or Path(database).is_absolute():
        return url
    scheme, _, rest = url.partition("://")
    query = rest.partition("?")[2]
    absolute = ((cwd or Path.cwd()) / database).resolve()
    return f"{scheme}:///{absolute}" + (f"?{query}" if query else "")


def check_sqlite_directory(url: str) -> None:
    """A SQLite warehouse is a file in a directory that exists: nothing creates the directory."""
    database = sqlite_path(url)
    if database is None:
        return
    directory = Path(database).resolve().parent
    if not directory.is_dir():
        raise ConfigurationError(f"the SQLite warehouse {url} is in {directory}, which does not exist: "
                                 "create the directory or correct the path")


def resolve_environment(environ: dict | None = None, cwd: Path | None = None, dagster_home: bool = True) -> dict[str, str]:
    """Makes the path settings in ``environ`` (default ``os.environ``, changed in place) absolute
    against ``cwd``, so that a process started elsewhere reads the same files; returns what it
    changed. Raises ``ConfigurationError`` for a universe file that does not exist, a
    ``DAGSTER_HOME`` that is not a directory (``dagster_home``: the command reads it) or a SQLite
    warehouse whose directory does not exist."""
    env = os.environ if environ is None else environ
    base = cwd or Path.cwd()
    changed: dict[str, str] = {}

    def absolute(value: str) -> str:
        return str((base / Path(value).expanduser()).resolve())

    if env.get(UNIVERSE_ENV):
        given = env[UNIVERSE_ENV]
        path = absolute(given)
        if not Path(path).is_file():
            shown = given if given == path else f"{given} (from {base}: {path})"
            raise ConfigurationError(f"{UNIVERSE_ENV}: universe file {shown} does not exist")
        changed[UNIVERSE_ENV] = path
    if dagster_home and env.get(DAGSTER_HOME_ENV):
        given = env[DAGSTER_HOME_ENV]
        path = absolute(given)
        if not Path(path).is_dir():
            raise ConfigurationError(f"{DAGSTER_HOME_ENV}={given}: {path} is not a directory (the Dagster instance's "
                                     f"home must exist: mkdir -p {path} && cp dagster.yaml {path}/)")
        changed[DAGSTER_HOME_ENV] = path
    for name in ROLE_URL_ENVS.values():
        if env.get(name):
            url = resolve_sqlite_url(env[name], base)
            check_sqlite_directory(url)
            changed[name] = url
    if env.get(ARCHIVE_CACHE_ENV):
        changed[ARCHIVE_CACHE_ENV] = absolute(env[ARCHIVE_CACHE_ENV])
    changed = {k: v for k, v in changed.items() if env.get(k) != v}
    env.update(changed)
    return changed


def warehouse_url_is_explicit(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get(WAREHOUSE_URL_ENV))


def warehouse_url(environ: Mapping[str, str] | None = None, role: str = INGEST) -> str:
    """The warehouse URL ``role`` (ingest, reader or owner) connects with: its own variable, else
    ``OHLCV_WAREHOUSE_URL``, else the SQLite default."""
    env = os.environ if environ is None else environ
    if env.get(ROLE_URL_ENVS[role]):
        return env[ROLE_URL_ENVS[role]]
    if env.get(WAREHOUSE_URL_ENV):
        return env[WAREHOUSE_URL_ENV]
    home = env.get(DAGSTER_HOME_ENV) or "."
    return f"sqlite:///{Path(home).resolve() / WAREHOUSE_FILE}"


def describe_warehouse_setting(environ: Mapping[str, str] | None = None, role: str = INGEST) -> str:
    """Why this URL: said in every error about a missing warehouse."""
    env = os.environ if environ is None else environ
    if env.get(ROLE_URL_ENVS[role]):
        return f"from {ROLE_URL_ENVS[role]}"
    if env.get(WAREHOUSE_URL_ENV):
        return f"from {WAREHOUSE_URL_ENV}"
    if env.get(DAGSTER_HOME_ENV):
        return f"the default beside the Dagster instance ({DAGSTER_HOME_ENV}={env[DAGSTER_HOME_ENV]})"
    return f"the default in the working directory ({DAGSTER_HOME_ENV} and {WAREHOUSE_URL_ENV} unset)"


EXPORT_DIRECTORY = "export"


def export_directory(configured: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """Where export files go: the universe's ``export.directory``, else ``$DAGSTER_HOME/export``,
    else ``./export``."""
    if configured:
        return Path(configured).resolve()
    env = os.environ if environ is None else environ
    return (Path(env.get(DAGSTER_HOME_ENV) or ".") / EXPORT_DIRECTORY).resolve()


def egress_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The local address this worker's venue requests leave from (``OHLCV_EGRESS_ADDRESS``), or
    None for the system's choice. Venues count weight per IP, so the shared rate budget is kept
    per (venue, egress address): workers on two addresses have two budgets, workers that leave
    through one address (unset, or set alike) share one."""
    value = ((os.environ if environ is None else environ).get(EGRESS_ADDRESS_ENV) or "").strip()
    return value or None



def archive_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where archive files too large to hold in memory (Kraken's OHLCVT zips) are kept once
    downloaded: ``OHLCV_ARCHIVE_CACHE``, else ``$DAGSTER_HOME/archive-cache``, else ``./archive-cache``."""
    env = os.environ if environ is None else environ
    if env.get(ARCHIVE_CACHE_ENV):
        return Path(env[ARCHIVE_CACHE_ENV]).resolve()
    return (Path(env.get(DAGSTER_HOME_ENV) or ".") / "archive-cache").resolve()
