"""`ohlcv-db-setup`: creates or updates the least-privilege PostgreSQL roles and databases of a
shared host (docs/security.md), migrates the warehouse as its owner and grants each role its
privileges. Idempotent: docker-compose.yml runs it at every start, so a password changed in the
environment is set again (rotation).

    OHLCV_ADMIN_URL=postgresql://postgres:...@host:5432/postgres \\
    OHLCV_PG_OWNER_PASSWORD=... OHLCV_PG_INGEST_PASSWORD=... OHLCV_PG_READER_PASSWORD=... \\
    OHLCV_PG_DAGSTER_PASSWORD=... ohlcv-db-setup

Where the roles are made by someone else (a managed PostgreSQL's administrator), ``ohlcv-db-setup
--migrate`` only brings the warehouse's schema to the head, connecting with ``OHLCV_OWNER_URL``
(else ``OHLCV_WAREHOUSE_URL``).

Exit 2 naming the variable that is not set; passwords are never printed.
"""

from __future__ import annotations

import os
import sys

ADMIN_URL_ENV = "OHLCV_ADMIN_URL"
PASSWORD_ENVS = {"owner": "OHLCV_PG_OWNER_PASSWORD", "ingest": "OHLCV_PG_INGEST_PASSWORD",
                 "reader": "OHLCV_PG_READER_PASSWORD", "dagster": "OHLCV_PG_DAGSTER_PASSWORD"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--migrate"]:
        return migrate_only()
    if argv:
        print(__doc__.strip())
        return 0 if argv[0] in ("-h", "--help") else 2
    missing = [name for name in (ADMIN_URL_ENV, *PASSWORD_ENVS.values()) if not os.environ.get(name)]
    if missing:
        print(f"ohlcv-db-setup: {', '.join(missing)} not set (no default password: see .env.example)", file=sys.stderr)
        return 2
    from ohlcv_assets.warehouse.roles import Layout, setup_database
    from ohlcv_assets.warehouse.engine import HEAD_REVISION
    from ohlcv_assets.warehouse.urls import public_url

    layout = Layout()
    urls = setup_database(os.environ[ADMIN_URL_ENV], {kind: os.environ[name] for kind, name in PASSWORD_ENVS.items()}, layout)
    for kind, url in urls.items():
        print(f"{kind}: {public_url(url)}")
    print(f"warehouse schema at revision {HEAD_REVISION}; roles and grants up to date")
    return 0


def migrate_only() -> int:
    from ohlcv_assets.core.settings import OWNER, describe_warehouse_setting, warehouse_url
    from ohlcv_assets.warehouse.engine import HEAD_REVISION
    from ohlcv_assets.warehouse.store import Warehouse
    from ohlcv_assets.warehouse.urls import public_url

    url = warehouse_url(role=OWNER)
    warehouse = Warehouse(url)
    try:
        warehouse.open_and_migrate()
    finally:
        warehouse.dispose()
    print(f"warehouse {public_url(url)} ({describe_warehouse_setting(role=OWNER)}) at schema revision {HEAD_REVISION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
