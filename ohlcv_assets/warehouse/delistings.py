"""Instruments a venue stopped trading. A run that finds one records it here, so that freshness,
alerts, the status report and gap scans stop expecting candles after its last one; the stored
candles stay, and history the venue still serves can still be backfilled."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ohlcv_assets.core.intervals import ms_to_iso
from ohlcv_assets.warehouse.schema import delistings
from ohlcv_assets.warehouse.store import Warehouse


@dataclasses.dataclass(frozen=True)
class Delisting:
    delisted_ms: int  # no candle opens from then on
    served: bool  # the venue still lists it (inactive) and serves its history; False: gone from its markets

    def describe(self, exchange: str) -> str:
        how = "still serves its history" if self.served else "no longer lists it; the stored candles are kept"
        return f"delisted: no candles from {ms_to_iso(self.delisted_ms)} ({exchange} {how})"


def record(warehouse: Warehouse, exchange: str, symbol: str, delisting: Delisting | None, now_ms: int) -> None:
    """Records what the venue says now: a delisting, or (None) that the instrument trades (again).
    Writes only a change (a run of every instrument takes no write lock for the ones that trade)."""
    if delisted(warehouse, exchange, symbol).get((exchange, symbol)) == delisting:
        return
    key = (delistings.c.exchange == exchange) & (delistings.c.symbol == symbol)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.delete(delistings).where(key))
        if delisting is not None:
            conn.execute(sa.insert(delistings).values(exchange=exchange, symbol=symbol, delisted_ms=delisting.delisted_ms,
                                                      served=delisting.served, detected_ms=now_ms))


def delisted(warehouse: Warehouse, exchange: str | None = None, symbol: str | None = None) -> dict[tuple[str, str], Delisting]:
    """Recorded delistings by (exchange, symbol), of one instrument or all."""
    query = sa.select(delistings)
    if exchange is not None:
        query = query.where(delistings.c.exchange == exchange, delistings.c.symbol == symbol)
    with warehouse.engine.connect() as conn:
        return {(r.exchange, r.symbol): Delisting(int(r.delisted_ms), bool(r.served)) for r in conn.execute(query)}
