"""SQL lives in the warehouse: no module of the package outside ``ohlcv_assets/warehouse/`` imports
SQLAlchemy or psycopg, or holds SQL text (a string starting with a SQL statement's keyword), except
the modules allowed below, each for the reason given. Parsed with ``ast``: imports inside functions
count too, comments and prose do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ohlcv_assets

PACKAGE = Path(ohlcv_assets.__file__).parent
WAREHOUSE = PACKAGE / "warehouse"
DATABASE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "sqlite3", "alembic")
SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|TRUNCATE|COPY|WITH\s+\w+\s+AS)\s")

# File names (not paths: modules are being moved between packages) allowed to talk to a database, and why.
ALLOWED = {
    "instance_storage.py": "Dagster's instance-storage adapter: it writes Dagster's own tables (event log, "
                           "check executions) in Dagster's database, not the warehouse",
}


def violations(source: str) -> list[str]:
    """What in ``source`` talks to a database: imports of a database module, SQL text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"line {node.lineno}: imports {name}" for name in names if name.split(".")[0] in DATABASE_MODULES]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return found


def test_no_module_outside_the_warehouse_imports_a_database_driver_or_writes_sql():
    offending = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if WAREHOUSE in path.parents or path.name in ALLOWED:
            continue
        if found := violations(path.read_text()):
            offending[str(path.relative_to(PACKAGE))] = found
    assert offending == {}, "SQL belongs in ohlcv_assets/warehouse/ (ask the warehouse for it): " + repr(offending)


def test_the_allowed_modules_exist_and_still_need_it():
    """An exception whose module is gone, or no longer talks to a database, is removed."""
    for name in ALLOWED:
        modules = [p for p in PACKAGE.rglob(name) if WAREHOUSE not in p.parents]
        assert len(modules) == 1, f"{name}: {modules}"
        assert violations(modules[0].read_text()), f"{name} no longer talks to a database: remove it from ALLOWED"


def test_the_check_finds_imports_and_sql_text():
    assert violations("import sqlalchemy as sa\n") == ["line 1: imports sqlalchemy"]
    assert violations("def f():\n    from sqlalchemy.dialects.postgresql import insert\n") == [
        "line 2: imports sqlalchemy.dialects.postgresql"]
    assert violations("import psycopg\nq = 'SELECT 1'\nd = f'DROP TABLE {t}'\n") == [
        "line 1: imports psycopg", "line 2: SQL text 'SELECT 1'", "line 3: SQL text 'DROP TABLE '"]
    assert violations('"""Selects the candles; Update the layout."""\nimport dagster\n') == []
