"""Warehouse URLs: the driver a bare PostgreSQL URL gets, and the form a URL may be shown in.
SQLAlchemy is imported only when a URL is parsed. (The SQLite file a URL names is the settings'
business: ``core.settings.sqlite_path``.)"""

from __future__ import annotations


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
