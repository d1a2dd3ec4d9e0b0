"""Durable counters of the ingest path per venue and egress address (``venue_counters``): every
batch commit adds what its requests met (``FetchStats`` since the last batch) and the candles it
wrote, one upsert. They survive process restarts, so the metrics exporter serves them as
Prometheus counters whatever process did the work."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ohlcv_assets.warehouse.schema import venue_counters
from ohlcv_assets.warehouse.store import Warehouse

COUNTED = ("requests", "retries", "http_429", "http_418", "http_5xx", "errors", "waited_seconds", "candles_written")


@dataclasses.dataclass(frozen=True)
class VenueCounts:
    exchange: str
    egress: str  # '' when requests leave from the system's choice of address
    requests: int
    retries: int
    http_429: int
    http_418: int
    http_5xx: int
    errors: int
    waited_seconds: float
    candles_written: int
    updated_ms: int


def add(warehouse: Warehouse, exchange: str, egress: str | None, fetched: object | None, candles_written: int,
        now_ms: int, connection: sa.Connection | None = None) -> None:
    """Adds one batch's counts (nothing is written when there is nothing to add). ``fetched`` has the
    counted attributes (an ``exchange.source.FetchStats``; the warehouse does not import the sources)."""
    values = {name: getattr(fetched, name) if fetched is not None else 0 for name in COUNTED if name != "candles_written"}
    values["candles_written"] = candles_written
    if not any(values.values()):
        return
    statement = warehouse.dialect.insert(venue_counters).values(exchange=exchange, egress=egress or "", updated_ms=now_ms, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["exchange", "egress"],
        set_={**{name: venue_counters.c[name] + statement.excluded[name] for name in COUNTED}, "updated_ms": statement.excluded.updated_ms})
    if connection is not None:
        connection.execute(statement)
        return
    with warehouse.engine.begin() as conn:
        conn.execute(statement)


def read(warehouse: Warehouse) -> list[VenueCounts]:
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(venue_counters).order_by(venue_counters.c.exchange, venue_counters.c.egress)).all()
    return [VenueCounts(**row._mapping) for row in rows]
