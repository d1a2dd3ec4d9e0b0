"""Where the warehouse is: resolved here and nowhere else, so that the definitions, the demo,
``ohlcv-status`` and the ``ohlcv`` CLI always read and write the same database.

``OHLCV_WAREHOUSE_URL`` when set; otherwise SQLite in ``$DAGSTER_HOME/warehouse.db`` (the Dagster
instance and its warehouse side by side); without ``DAGSTER_HOME``, ``./warehouse.db``.
No Dagster here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

WAREHOUSE_URL_ENV = "OHLCV_WAREHOUSE_URL"
EGRESS_ADDRESS_ENV = "OHLCV_EGRESS_ADDRESS"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
WAREHOUSE_FILE = "warehouse.db"


def warehouse_url_is_explicit(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get(WAREHOUSE_URL_ENV))


def warehouse_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get(WAREHOUSE_URL_ENV):
        return env[WAREHOUSE_URL_ENV]
    home = env.get(DAGSTER_HOME_ENV) or "."
    return f"sqlite:///{Path(home).resolve() / WAREHOUSE_FILE}"


def describe_warehouse_setting(environ: Mapping[str, str] | None = None) -> str:
    """Why this URL: said in every error about a missing warehouse."""
    env = os.environ if environ is None else environ
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


ARCHIVE_CACHE_ENV = "OHLCV_ARCHIVE_CACHE"


def archive_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where archive files too large to hold in memory (Kraken's OHLCVT zips) are kept once
    downloaded: ``OHLCV_ARCHIVE_CACHE``, else ``$DAGSTER_HOME/archive-cache``, else ``./archive-cache``."""
    env = os.environ if environ is None else environ
    if env.get(ARCHIVE_CACHE_ENV):
        return Path(env[ARCHIVE_CACHE_ENV]).resolve()
    return (Path(env.get(DAGSTER_HOME_ENV) or ".") / "archive-cache").resolve()
