"""The persistent gap record: what was found missing, why, and what happened to it.

Lifecycle: a ``fillable`` gap is ``detected``, then ``backfill_requested`` (with the request id
tagged on its backfill), then ``filled`` when a scan no longer finds it (``superseded`` when it
was partly filled and smaller gaps replaced it). A failed backfill sends it back to ``detected``
after an exponential delay, and after ``MAX_BACKFILL_ATTEMPTS`` it is ``unfillable`` (given up),
until the venue's archive changes (its setting, or the local zips it lists): a scan then makes it
``detected`` again. Gaps the
exchange confirms empty are ``confirmed_empty`` and are never asked for again; gaps before listing
or beyond the exchange's history, and candles retention retired, are ``unfillable`` from the start.
"""

import dataclasses

import sqlalchemy as sa

from ohlcv_assets.core.gaps import BEFORE_LISTING, BEYOND_HISTORY, EXCHANGE_DOWNTIME, FILLABLE, NO_TRADES, RETIRED, Gap
from ohlcv_assets.warehouse.schema import (
    BACKFILL_REQUESTED,
    CONFIRMED_EMPTY,
    DETECTED,
    FILLED,
    GAP_CLOSED_STATUSES,
    GAP_OPEN_STATUSES,
    SUPERSEDED,
    UNFILLABLE,
    candles,
    funding_rates,
    gaps,
    open_interest,
    retired_ranges,
)
from ohlcv_assets.warehouse.funding import FUNDING
from ohlcv_assets.warehouse.open_interest import OPEN_INTEREST
from ohlcv_assets.warehouse.store import Warehouse

SERIES_TABLES = {FUNDING: funding_rates, OPEN_INTEREST: open_interest}  # the series stored apart from candles, by timeframe
MAX_BACKFILL_ATTEMPTS = 5
RETRY_BASE_MS = 5 * 60_000
_INITIAL_STATUS = {FILLABLE: DETECTED, EXCHANGE_DOWNTIME: CONFIRMED_EMPTY, NO_TRADES: CONFIRMED_EMPTY, BEFORE_LISTING: UNFILLABLE, BEYOND_HISTORY: UNFILLABLE,
                   RETIRED: UNFILLABLE}


@dataclasses.dataclass(frozen=True)
class GapRecord:
    id: int
    exchange: str
    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int
    candles: int
    reason: str
    status: str
    request_id: str | None
    attempts: int
    next_attempt_ms: int | None
    detected_ms: int
    updated_ms: int
    note: str
    archive_signature: str | None


def _records(rows) -> list[GapRecord]:
    fields = [f.name for f in dataclasses.fields(GapRecord)]
    return [GapRecord(**{f: row._mapping[f] for f in fields}) for row in rows]


def _instrument(exchange: str, symbol: str, timeframe: str):
    return sa.and_(gaps.c.exchange == exchange, gaps.c.symbol == symbol, gaps.c.timeframe == timeframe)


def confirmed_empty_ranges(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
    query = sa.select(gaps.c.start_ms, gaps.c.end_ms).where(_instrument(exchange, symbol, timeframe), gaps.c.status == CONFIRMED_EMPTY)
    with warehouse.engine.connect() as conn:
        return [(int(a), int(b)) for a, b in conn.execute(query)]


def retired_spans(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
    """Ranges retention dropped on purpose (``retention``): the scan calls them ``retired``."""
    t = retired_ranges.c
    query = sa.select(t.start_ms, t.end_ms).where(t.exchange == exchange, t.symbol == symbol, t.timeframe == timeframe)
    with warehouse.engine.connect() as conn:
        return [(int(a), int(b)) for a, b in conn.execute(query)]


def instrument_gaps(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str) -> list[GapRecord]:
    query = sa.select(gaps).where(_instrument(exchange, symbol, timeframe)).order_by(gaps.c.start_ms, gaps.c.id)
    with warehouse.engine.connect() as conn:
        return _records(conn.execute(query))


def given_up(record: GapRecord) -> bool:
    """A fillable gap its backfills did not fill (``unfillable`` from the start is another reason)."""
    return record.status == UNFILLABLE and record.reason == FILLABLE


def reconcile(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str, found: list[Gap],
              step_ms: int, now_ms: int, archive_signature: str = "") -> dict[str, int]:
    """Brings the records of one instrument and interval in line with a scan's gaps.
    ``archive_signature`` names the venue's archive as it is now (``archive.formats.archive_signature``:
    its setting, and for Kraken its local zips): a given-up gap found again is tried again once it
    differs from the one its backfills had (a record from before signatures adopts the current one)."""
    current = {(g.start_ms, g.end_ms, g.reason) for g in found}
    counts = {"new": 0, "filled": 0, "superseded": 0, "tried_again": 0}
    with warehouse.engine.begin() as conn:
        existing = _records(conn.execute(sa.select(gaps).where(_instrument(exchange, symbol, timeframe))))
        known = {(r.start_ms, r.end_ms, r.reason) for r in existing if r.status not in GAP_CLOSED_STATUSES}
        for record in existing:
            if record.archive_signature == archive_signature or record.status not in (*GAP_OPEN_STATUSES, UNFILLABLE):
                continue
            values = {"archive_signature": archive_signature}
            found_again = (record.start_ms, record.end_ms, record.reason) in current
            if given_up(record) and found_again and record.archive_signature is not None:
                values.update(status=DETECTED, attempts=0, next_attempt_ms=None, request_id=None, updated_ms=now_ms,
                              note="tried again: the archive changed since it was given up")
                counts["tried_again"] += 1
            conn.execute(gaps.update().where(gaps.c.id == record.id).values(**values))
        for record in existing:
            # each scan states open and unfillable gaps anew (an unfillable range moves with a venue's
            # history horizon, and is stored once an archive or an import fills it); a gap the scan
            # finds exactly as recorded keeps its record, a given-up one too (it is not asked again)
            if record.status not in (*GAP_OPEN_STATUSES, UNFILLABLE) or (record.start_ms, record.end_ms, record.reason) in current:
                continue
            overlapped = any(g.start_ms < record.end_ms and record.start_ms < g.end_ms for g in found)
            status = SUPERSEDED if overlapped else FILLED
            counts[status] += 1
            conn.execute(gaps.update().where(gaps.c.id == record.id).values(status=status, updated_ms=now_ms))
        new = [g for g in found if (g.start_ms, g.end_ms, g.reason) not in known]
        if new:
            conn.execute(gaps.insert(), [{
                "exchange": exchange, "symbol": symbol, "timeframe": timeframe, "start_ms": g.start_ms, "end_ms": g.end_ms,
                "candles": g.candles(step_ms), "reason": g.reason, "status": _INITIAL_STATUS[g.reason], "request_id": None,
                "attempts": 0, "next_attempt_ms": None, "detected_ms": now_ms, "updated_ms": now_ms, "note": "",
                "archive_signature": archive_signature,
            } for g in new])
        counts["new"] = len(new)
    return counts


def record_confirmed(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str, found: list[Gap],
                     step_ms: int, now_ms: int) -> int:
    """Records what ingesting found: empty ranges a venue's answers confirmed (``no_trades``,
    ``exchange_downtime``), and ranges a run could not settle (``fillable``: open, for the gap
    loop), unless already recorded as confirmed or open; returns how many are new. Open records
    they cover are settled by the scan."""
    if not found:
        return 0
    with warehouse.engine.begin() as conn:
        known = {(int(a), int(b)) for a, b in conn.execute(sa.select(gaps.c.start_ms, gaps.c.end_ms).where(
            _instrument(exchange, symbol, timeframe), gaps.c.status.in_((CONFIRMED_EMPTY, *GAP_OPEN_STATUSES)),
            gaps.c.start_ms >= min(g.start_ms for g in found), gaps.c.end_ms <= max(g.end_ms for g in found)))}
        new = [g for g in found if (g.start_ms, g.end_ms) not in known]
        if new:
            conn.execute(gaps.insert(), [{
                "exchange": exchange, "symbol": symbol, "timeframe": timeframe, "start_ms": g.start_ms, "end_ms": g.end_ms,
                "candles": g.candles(step_ms), "reason": g.reason, "status": _INITIAL_STATUS[g.reason], "request_id": None,
                "attempts": 0, "next_attempt_ms": None, "detected_ms": now_ms, "updated_ms": now_ms, "note": "",
            } for g in new])
    return len(new)


def _of_interval(timeframe: str | None):
    return sa.true() if timeframe is None else gaps.c.timeframe == timeframe


def due_for_backfill(warehouse: Warehouse, now_ms: int, limit: int, timeframe: str | None = None) -> list[GapRecord]:
    query = (
        sa.select(gaps)
        .where(gaps.c.status == DETECTED, gaps.c.reason == FILLABLE, _of_interval(timeframe),
               sa.or_(gaps.c.next_attempt_ms.is_(None), gaps.c.next_attempt_ms <= now_ms))
        .order_by(gaps.c.detected_ms, gaps.c.id)
        .limit(limit)
    )
    with warehouse.engine.connect() as conn:
        return _records(conn.execute(query))


def in_flight(warehouse: Warehouse, timeframe: str | None = None) -> list[GapRecord]:
    query = sa.select(gaps).where(gaps.c.status == BACKFILL_REQUESTED, _of_interval(timeframe))
    with warehouse.engine.connect() as conn:
        return _records(conn.execute(query))


def mark_requested(warehouse: Warehouse, ids: list[int], request_id: str, now_ms: int) -> None:
    with warehouse.engine.begin() as conn:
        conn.execute(gaps.update().where(gaps.c.id.in_(ids)).values(
            status=BACKFILL_REQUESTED, request_id=request_id, updated_ms=now_ms))


def release(warehouse: Warehouse, records: list[GapRecord], now_ms: int) -> None:
    """Back to detected, no attempt counted: the request that marked them was never submitted."""
    with warehouse.engine.begin() as conn:
        conn.execute(gaps.update().where(gaps.c.id.in_([r.id for r in records])).values(
            status=DETECTED, request_id=None, updated_ms=now_ms))


def mark_backfill_finished(warehouse: Warehouse, records: list[GapRecord], succeeded: bool, why: str, now_ms: int) -> None:
    """One more backfill attempt is over for gaps whose candles are still not all stored (call
    ``settle_stored`` first): a failure waits exponentially longer. After MAX_BACKFILL_ATTEMPTS
    the gap is given up as unfillable: no endless loop on candles that never come."""
    with warehouse.engine.begin() as conn:
        for record in records:
            attempts = record.attempts + 1
            if attempts >= MAX_BACKFILL_ATTEMPTS:
                values = {"status": UNFILLABLE, "note": f"gave up after {attempts} backfills; last: {why}"[:500]}
            else:
                delay = RETRY_BASE_MS if succeeded else RETRY_BASE_MS * 2 ** (attempts - 1)
                values = {"status": DETECTED, "next_attempt_ms": now_ms + delay, "note": f"backfill {attempts}: {why}"[:500]}
            conn.execute(gaps.update().where(gaps.c.id == record.id).values(attempts=attempts, updated_ms=now_ms, **values))


def settle_stored(warehouse: Warehouse, records: list[GapRecord], why: str, now_ms: int) -> list[GapRecord]:
    """Marks ``filled`` every gap whose candles are all stored now (whoever stored them: a gap
    backfill, a user's backfill, the today schedule), without asking the exchange; returns the others."""
    if not records:
        return []
    remaining, filled = [], []
    with warehouse.engine.connect() as conn:
        for record in records:
            table = SERIES_TABLES.get(record.timeframe, candles)  # settlements, samples: one row each, as candles
            stored = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.exchange == record.exchange, table.c.symbol == record.symbol, table.c.timeframe == record.timeframe,
                table.c.open_time >= record.start_ms, table.c.open_time < record.end_ms)).scalar_one()
            (filled if stored >= record.candles else remaining).append(record)
    if filled:
        with warehouse.engine.begin() as conn:
            conn.execute(gaps.update().where(gaps.c.id.in_([r.id for r in filled])).values(
                status=FILLED, updated_ms=now_ms, note=f"stored: {why}"[:500]))
    return remaining
