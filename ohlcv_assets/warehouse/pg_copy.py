"""PostgreSQL's binary COPY, both ways: writing a frame of rows as one COPY payload built with
numpy (no Python object per value), and reading fixed-width columns as arrays. The PostgreSQL
dialect (``dialect.py``) calls these; nothing else needs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ohlcv_assets.warehouse.merge import KEY, pandas_dtype, upsert_set

_COPY_TYPES = {sa.BigInteger: "int8", sa.Float: "float8", sa.Boolean: "bool", sa.String: "text"}
_PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.zeros(2, ">i4").tobytes()
_PG_BINARY_TRAILER = np.array([-1], ">i2").tobytes()
_BINARY_TYPES = {sa.BigInteger: ">i8", sa.Float: ">f8", sa.Boolean: "?"}


def _binary_rows(kinds: dict[str, str | None]) -> np.dtype:
    """One row of PostgreSQL's binary COPY format for fixed-width fields: a field count, then a
    length and a big-endian value per field (a NULL field, kind None, is its length -1 alone)."""
    fields = [("count", ">i2")]
    for name, kind in kinds.items():
        fields += [(f"{name}_length", ">i4")] + ([(name, kind)] if kind is not None else [])
    return np.dtype(fields)


def pg_binary_copy(table: sa.Table, rows: pd.DataFrame) -> memoryview | None:
    """The rows as one PostgreSQL binary COPY payload, built with numpy (no per-row Python) in a
    single buffer that psycopg sends as it is (header and trailer in place: joining bytes copied
    the payload twice, half the client's CPU of a COPY). A column NULL in every row (a venue's
    missing extras) is written as NULLs; None when a column is NULL in only some rows or a text
    column varies: those rows go through write_row."""
    kinds, values = {}, {"count": len(table.columns)}
    for column in table.columns:
        data = rows[column.name]
        if isinstance(column.type, sa.String):
            first = data.iloc[0] if len(data) else ""
            if first is None or (data.to_numpy() != first).any():
                return None
            encoded = str(first).encode()
            kind, value = f"S{len(encoded)}", encoded
        else:
            kind, value = _BINARY_TYPES[type(column.type)], data.to_numpy()
            missing = pd.isna(value)
            if len(value) and missing.all() and column.nullable:
                kinds[column.name], values[f"{column.name}_length"] = None, -1
                continue
            if value.dtype.kind == "O" or missing.any():
                return None
        kinds[column.name] = kind
        values[f"{column.name}_length"] = np.dtype(kind).itemsize
        values[column.name] = value
    row = _binary_rows(kinds)
    buffer = np.empty(len(_PG_BINARY_HEADER) + len(rows) * row.itemsize + len(_PG_BINARY_TRAILER), np.uint8)
    buffer[:len(_PG_BINARY_HEADER)] = np.frombuffer(_PG_BINARY_HEADER, np.uint8)
    buffer[len(buffer) - len(_PG_BINARY_TRAILER):] = np.frombuffer(_PG_BINARY_TRAILER, np.uint8)
    payload = buffer[len(_PG_BINARY_HEADER):len(buffer) - len(_PG_BINARY_TRAILER)].view(row)
    for name, value in values.items():
        payload[name] = value
    return memoryview(buffer)


def binary_readable(column: sa.Column) -> tuple[str, str, str] | None:
    """How a column is read as a fixed-width array: (SQL expression, numpy kind, pandas dtype); a
    nullable number as float8 with NaN for NULL, as its frame dtype holds it. None: not so readable."""
    kind = _BINARY_TYPES.get(type(column.type))
    if kind is None or (column.nullable and kind == "?"):
        return None
    if column.nullable:
        return f"coalesce({column.name}::float8, 'NaN')", ">f8", pandas_dtype(column)
    return column.name, kind, pandas_dtype(column)


def binary_read(connection: sa.Connection, query, table: sa.Table, columns: list[str]) -> pd.DataFrame:
    """Reads fixed-width columns without a Python object per value: the server sends each column
    as one array (binary COPY of a single row of ``array_agg``), numpy reads the arrays in place.
    A COPY of the rows themselves costs a message, so a Python step, per row, and SQLAlchemy rows
    far more: for a year of 1m candles more than the checks that read them. Rows come ascending by
    open_time."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    reads = [binary_readable(table.c[c]) for c in columns]
    arrays = ", ".join(f"array_agg({expression})" for expression, _, _ in reads)
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY (SELECT {arrays} FROM ({sql}) AS q) TO STDOUT (FORMAT BINARY)") as copy:
            data = b"".join(bytes(block) for block in copy)
    values, offset = {}, len(_PG_BINARY_HEADER) + 2
    for c, (_, kind, dtype) in zip(columns, reads):
        length = int(np.frombuffer(data, ">i4", 1, offset)[0])
        offset += 4
        if length < 0:  # no rows: array_agg is NULL
            values[c] = np.empty(0, dtype)
            continue
        count = int(np.frombuffer(data, ">i4", 1, offset + 12)[0])
        elements = np.frombuffer(data, np.dtype([("length", ">i4"), ("value", kind)]), count, offset + 20)
        values[c], offset = elements["value"].astype(dtype), offset + length
    frame = pd.DataFrame(values, columns=columns)
    times = frame["open_time"].to_numpy()
    if len(times) > 1 and not (times[1:] > times[:-1]).all():
        frame = frame.sort_values("open_time", kind="stable", ignore_index=True)
    return frame


def copy_merge(connection: sa.Connection, table: sa.Table, rows: pd.DataFrame, is_new: np.ndarray) -> np.ndarray:
    """Writes one instrument's rows (``is_new``: not stored when read in this transaction); returns
    the open times it inserted. Rows that are all new go straight into the table by binary COPY (a
    concurrent writer of the same rows makes the transaction fail on the key, and the retry
    merges). Otherwise they are COPYed into a transaction-local staging table and merged with
    INSERT ... ON CONFLICT DO UPDATE; when some are new, first inserted where no row has their key
    (``ON CONFLICT DO NOTHING ... RETURNING``: exactly the rows this statement inserted, even when
    a concurrent writer stored some since they were read; PostgreSQL cannot return ``xmax`` from
    a partitioned table to tell an upsert's inserts from its updates)."""
    all_new = bool(is_new.all())
    columns = [c.name for c in table.columns]
    target = table.name if all_new else f"{table.name}_staging"
    driver_connection = connection.connection.driver_connection
    with driver_connection.cursor() as cursor:
        if not all_new:
            cursor.execute(f"CREATE TEMP TABLE {target} (LIKE {table.name}) ON COMMIT DROP")
        with cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            payload = pg_binary_copy(table, rows)
            if payload is not None:
                copy.write(payload)
            else:
                copy.set_types([_COPY_TYPES[type(c.type)] for c in table.columns])
                # integers NULL in some rows arrive as floats (NaN for NULL): written as integers
                exact = rows.astype({c.name: "Int64" for c in table.columns if isinstance(c.type, sa.BigInteger)})
                for row in exact.astype(object).where(exact.notna(), None).itertuples(index=False, name=None):
                    copy.write_row(row)
    if all_new:
        return rows["open_time"].to_numpy()
    staged = sa.table(target, *(sa.column(c) for c in columns))
    inserted = []
    if is_new.any():  # (rows stored when read stay stored: only retention deletes, whole old spans)
        inserted = connection.execute(
            pg_insert(table).from_select(columns, sa.select(*(staged.c[c] for c in columns)))
            .on_conflict_do_nothing(index_elements=KEY).returning(table.c.open_time)).scalars().all()
    # Every staged key is stored now: this updates the rows whose values differ (not those just
    # inserted), by the key's index like the insert (an UPDATE joined with the staging table is not).
    updated = upsert_set(table, staged.c)
    merge = pg_insert(table).from_select(columns, sa.select(*(staged.c[c] for c in columns)))
    merge = merge.on_conflict_do_update(
        index_elements=KEY, set_=upsert_set(table, merge.excluded),
        where=sa.tuple_(*(table.c[c] for c in updated)).is_distinct_from(sa.tuple_(*(merge.excluded[c] for c in updated))))
    connection.execute(merge)
    return np.array(inserted, dtype=np.int64)
