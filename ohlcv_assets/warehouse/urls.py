"""Warehouse URLs: the driver a bare PostgreSQL URL gets, the form a URL may be shown in, and the
SQLite file a URL names. SQLAlchemy is imported only when a URL is parsed: settings, read by
processes that never open a database, resolve paths with these."""

from __future__ import annotations

from pathlib import Path

from ohlcv_assets.core.errors import ConfigurationError


def parse_url(url: str):
    import sqlalchemy as sa  # only here: see the module's docstring

    return sa.make_url(url)


def normalise_url(url: str) -> str:
    """Uses psycopg 3 for PostgreSQL URLs given without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def public_url(url: str) -> str:
    """The URL as it may be shown and recorded: driver, user, host, port, database; never the
    password or the query (which may carry one), even when SQLAlchemy cannot parse it."""
    import sqlalchemy as sa

    try:
        return parse_url(normalise_url(url)).set(query={}).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://…" if "://" in url else "(not a URL)"


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL as written (None: not SQLite, or in memory)."""
    if not url.startswith("sqlite"):
        return None
    database = parse_url(url).database
    return database if database and database != ":memory:" and not database.startswith("file:") else None


def resolve_sqlite_url(url: str, cwd: Path | None = None) -> str:
    """A SQLite URL with its file made absolute against ``cwd`` (default: the working directory);
    any other URL unchanged."""
    database = sqlite_path(url)
    if database is None or Path(database).is_absolute():
        return url
    absolute = ((cwd or Path.cwd()) / database).resolve()
    return parse_url(url).set(database=str(absolute)).render_as_string(hide_password=False)


def check_sqlite_directory(url: str) -> None:
    """A SQLite warehouse is a file in a directory that exists: nothing creates the directory."""
    database = sqlite_path(url)
    if database is None:
        return
    directory = Path(database).resolve().parent
    if not directory.is_dir():
        raise ConfigurationError(f"the SQLite warehouse {url} is in {directory}, which does not exist: "
                                 "create the directory or correct the path")
