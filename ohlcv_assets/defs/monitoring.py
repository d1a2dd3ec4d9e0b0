"""What a person (``ohlcv-status``) and the alert sensor need to know: per instrument and interval
its freshness, coverage, gaps (explained or not), failing checks and last run; and the health of
the moving parts. Reads the warehouse and the Dagster instance; launches nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import dagster as dg

from ohlcv_assets.archive import ArchiveUnavailable
from ohlcv_assets.archive.formats import build_archive
from ohlcv_assets.defs.dagster_internals import failing_check_partitions
from ohlcv_assets.core.errors import AuthenticationFailed
from ohlcv_assets.exchange.registry import build_source
from ohlcv_assets.quality.gap_scan import settled_end_ms
from ohlcv_assets.core.intervals import interval_ms, ms_to_iso, now_ms, utc_day
from ohlcv_assets.core.names import (
    UNIVERSE_METADATA,
    WAREHOUSE_METADATA,
    candles_key,
    freshness_windows,
    partition_key_string,
    split_partition_key_string,
)
from ohlcv_assets.defs.partitions import candle_partitions
from ohlcv_assets.quality.checks import checks_for
from ohlcv_assets.core.sessions import Sessions
from ohlcv_assets.core.universe import ExchangeConfig, Instrument, Universe
from ohlcv_assets.warehouse import delistings
from ohlcv_assets.warehouse.schema import CONFIRMED_EMPTY
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import public_url
from ohlcv_assets.warehouse.summaries import instrument_summaries, retired_ranges_by_instrument

HEARTBEAT_STALE_SECONDS = 300
UNEXPLAINED = "unexplained"


def freshness(last_open_ms: int | None, interval: str, now: int, refresh_minutes: int,
              sessions: Sessions = Sessions(), delisted_ms: int | None = None) -> str:
    """Age of the last candle in time the venue traded (a weekend does not age an equity); a
    delisted instrument expects no new candles."""
    if delisted_ms is not None:
        return "delisted"
    if last_open_ms is None:
        return "no data"
    age = dt.timedelta(milliseconds=candle_age_ms(last_open_ms, interval, now, sessions))
    warn, fail = freshness_windows(interval, refresh_minutes)
    return "fresh" if age <= warn else "aging" if age <= fail else "stale"


def candle_age_ms(last_open_ms: int, interval: str, now: int, sessions: Sessions = Sessions()) -> int:
    """Milliseconds since the close of the candle opening at ``last_open_ms``, in time the venue traded."""
    return sessions.last_trading_ms(now) - (last_open_ms + interval_ms(interval))


def instrument_freshness(universe: Universe, instrument: Instrument, interval: str, last_open_ms: int | None,
                         delisting, now: int) -> str:
    """``freshness`` with the instrument's sessions, the universe's refresh and its delisting."""
    return freshness(last_open_ms, interval, now, universe.refresh_minutes, universe.sessions_of(instrument),
                     delisting and delisting.delisted_ms)


def instrument_rows(universe: Universe, warehouse: Warehouse, instance: dg.DagsterInstance | None, now: int) -> list[dict]:
    """One row per instrument and interval. ``open_gaps`` counts missing candles by class;
    candles missing from the settled grid that no scan has explained yet count as ``unexplained``."""
    summaries = instrument_summaries(warehouse)
    stored = summaries.stored  # from the per-day counts: no scan of the candles
    delisted = delistings.delisted(warehouse)
    dropped = retired(warehouse)
    rows = []
    for interval in universe.intervals:
        failing = failing_checks(instance, universe, interval) if instance else None
        step = interval_ms(interval)
        for inst in universe.instruments_for(interval):
            s = stored.get((inst.exchange, inst.symbol, interval))
            mine = summaries.gaps.get((inst.exchange, inst.symbol, interval), [])
            open_gaps: dict[str, int] = {}
            expected = 0
            delisting = delisted.get((inst.exchange, inst.symbol))
            sessions = universe.sessions_of(inst)
            if s:
                end = settled_end_ms(now, step, universe.refresh_minutes, s.last, delisting.delisted_ms if delisting else None)
                expected = sessions.count(s.first, end, step) if end > s.first else 0
                explained = 0
                for g in mine:
                    if g.status != CONFIRMED_EMPTY:  # confirmed downtime is explained, not open
                        open_gaps[g.reason] = open_gaps.get(g.reason, 0) + int(g.candles)
                    lo, hi = max(g.start_ms, s.first), min(g.end_ms, end)
                    explained += sessions.count(lo, hi, step) if hi > lo else 0
                stored_in_grid = s.n  # every stored candle is on the grid (a blocking check)
                unexplained = expected - stored_in_grid - explained
                if unexplained > 0:
                    open_gaps[UNEXPLAINED] = int(unexplained)
            run, quality = last_run(instance, interval, inst.key) if instance else (None, None)
            rows.append({
                "exchange": inst.exchange, "symbol": inst.symbol, "interval": interval,
                "freshness": instrument_freshness(universe, inst, interval, s.last if s else None, delisting, now),
                "delisted": ms_to_iso(delisting.delisted_ms) if delisting else None,
                "last_candle": ms_to_iso(s.last) if s else None,
                "coverage_pct": round(100 * min(s.n, expected) / expected, 3) if s and expected else None,
                "candles": s.n if s else 0,
                "open_gaps": open_gaps,
                "day_sources": summaries.day_sources.get((inst.exchange, inst.symbol, interval), {}),
                "retired": dropped.get((inst.exchange, inst.symbol, interval), []),
                "disagreeing_candles": summaries.disagreeing.get((inst.exchange, inst.symbol, interval), 0),
                "failing_checks": None if failing is None else
                [f"{name} ({', '.join(mine)})" for name, days in failing.items() if (mine := of_instrument(days, inst.key))],
                "quality_score": quality,
                "last_run": run,
            })
    return rows


def retired(warehouse: Warehouse) -> dict[tuple[str, str, str], list[str]]:
    """Per (exchange, symbol, interval), the ranges retention dropped (``retired_ranges``), adjacent
    spans merged: ``first..end (candles)``, end exclusive."""
    merged: dict[tuple[str, str, str], list[list[int]]] = {}
    for key, ranges in retired_ranges_by_instrument(warehouse).items():
        spans = merged.setdefault(key, [])
        for start_ms, end_ms, candles in ranges:
            if spans and start_ms <= spans[-1][1]:
                spans[-1][1], spans[-1][2] = max(spans[-1][1], end_ms), spans[-1][2] + candles
            else:
                spans.append([start_ms, end_ms, candles])
    return {key: [f"{ms_to_iso(start)}..{ms_to_iso(end)} ({n:,} candles)" for start, end, n in spans]
            for key, spans in merged.items()}


def stale_instruments(universe: Universe, warehouse: Warehouse, now: int) -> list[dict]:
    """The stale instruments, from each one's latest candle alone: one index lookup per instrument,
    so the alert sensor's tick stays short however much history is stored."""
    delisted = delistings.delisted(warehouse)
    stale = []
    for interval in universe.intervals:
        for inst in universe.instruments_for(interval):
            last = warehouse.latest_open_time(inst.exchange, inst.symbol, interval)
            delisting = delisted.get((inst.exchange, inst.symbol))
            if instrument_freshness(universe, inst, interval, last, delisting, now) == "stale":
                stale.append({"exchange": inst.exchange, "symbol": inst.symbol, "interval": interval,
                              "last_candle": ms_to_iso(last) if last is not None else None})
    return stale


def of_instrument(partitions: list[str], instrument_key: str) -> list[str]:
    return [p for p in partitions if split_partition_key_string(p)[0] == instrument_key]


def failing_checks(instance: dg.DagsterInstance, universe: Universe, interval: str, blocking_only: bool = False) -> dict[str, list[str]]:
    """Per check, the partitions whose latest evaluation failed: a day stays failing until that
    day passes again, whatever other days report since."""
    specs = [spec for spec in checks_for(interval) if spec.blocking or not blocking_only]
    keys = {dg.AssetCheckKey(candles_key(interval), spec.name): spec.name for spec in specs}
    failing = failing_check_partitions(instance, list(keys), candle_partitions(universe, interval))
    return {keys[key]: partitions for key, partitions in failing.items()}


def last_run(instance: dg.DagsterInstance, interval: str, instrument_key: str) -> tuple[str | None, float | None]:
    """When today's partition was last materialized, and the quality score it recorded."""
    today = dt.datetime.now(dt.timezone.utc).date()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=candles_key(interval), asset_partitions=[partition_key_string(instrument_key, today)]),
        limit=1).records
    if not records:
        return None, None
    score = records[0].asset_materialization.metadata.get("quality_score")
    return (dt.datetime.fromtimestamp(records[0].timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            None if score is None else score.value)


def stored_instruments(warehouse: Warehouse, wanted: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of ``wanted`` (exchange, symbol, interval) have candles: an index lookup each, where a
    DISTINCT over the table would read every stored candle."""
    return {key for key in wanted if warehouse.latest_open_time(*key) is not None}


@dataclasses.dataclass(frozen=True)
class RecordedSettings:
    """The universe file and warehouse the instance's latest candles run read and wrote."""

    universe: str
    warehouse: str
    asset: str
    when: str

    def describe(self) -> str:
        return f"recorded by its latest {self.asset} materialization, {self.when}"


def recorded_settings(instance: dg.DagsterInstance) -> RecordedSettings | None:
    """What the newest candles materialization of any interval recorded (None: none recorded it)."""
    newest = None
    for key in instance.get_asset_keys(prefix=[candles_key("1m").path[0]]):
        records = instance.fetch_materializations(key, limit=1).records
        if not records:
            continue
        metadata = records[0].asset_materialization.metadata
        if UNIVERSE_METADATA in metadata and WAREHOUSE_METADATA in metadata and (
                newest is None or records[0].storage_id > newest[0].storage_id):
            newest = (records[0], key, metadata)
    if newest is None:
        return None
    record, key, metadata = newest
    when = dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return RecordedSettings(str(metadata[UNIVERSE_METADATA].value), str(metadata[WAREHOUSE_METADATA].value),
                            key.to_user_string(), when)


@dataclasses.dataclass(frozen=True)
class SettingsInUse:
    universe: Path | None  # None: the bundled demo universe
    warehouse_url: str
    universe_problem: str | None = None
    warehouse_problem: str | None = None


def settings_in_use(given_universe: Path | None, given_url: str, url_explicit: bool, recorded: RecordedSettings | None,
                    home: str, bundled: Path) -> SettingsInUse:
    """The universe and warehouse a reader of the instance in ``home`` must use: those given, when
    they are what the instance recorded (or it recorded nothing); the recorded ones where none was
    given (a universe file that exists here; a SQLite warehouse, whose URL is whole); otherwise a
    problem naming both."""
    if recorded is None:
        return SettingsInUse(given_universe, given_url)
    universe, universe_problem = given_universe, None
    given = given_universe or bundled
    if str(given) != recorded.universe:
        if given_universe is None and Path(recorded.universe).is_file():
            universe = Path(recorded.universe)
        elif given_universe is None:
            universe_problem = (f"the Dagster instance in {home} runs with the universe {recorded.universe} "
                                f"({recorded.describe()}), which does not exist here: set OHLCV_UNIVERSE to its copy")
        else:
            universe_problem = (f"the Dagster instance in {home} runs with the universe {recorded.universe} "
                                f"({recorded.describe()}), but OHLCV_UNIVERSE is {given_universe}: unset OHLCV_UNIVERSE "
                                "to read the instance's own, or give that file")
    url, warehouse_problem = given_url, None
    if public_url(given_url) != recorded.warehouse:
        if not url_explicit and recorded.warehouse.startswith("sqlite"):
            url = recorded.warehouse
        else:
            warehouse_problem = (f"the Dagster instance in {home} runs with another warehouse: {recorded.warehouse} "
                                 f"({recorded.describe()}), but this is {public_url(given_url)}: set OHLCV_WAREHOUSE_URL "
                                 "to the instance's warehouse")
    return SettingsInUse(universe, url, universe_problem, warehouse_problem)


def materialized_anything(instance: dg.DagsterInstance, universe: Universe) -> bool:
    return any(instance.fetch_materializations(candles_key(i), limit=1).records for i in universe.intervals)


def health(universe: Universe, warehouse: Warehouse | None, warehouse_problem: str | None,
           instance: dg.DagsterInstance | None, universe_problem: str | None = None) -> dict[str, str]:
    """Each part: ``ok …`` or what is wrong. A warehouse holding none of the universe's instruments
    while Dagster recorded materializations of them is wrong: the runs write somewhere else."""
    report: dict[str, str] = {}
    if universe_problem:
        report["universe"] = f"FAIL {universe_problem}"
    if warehouse is None:
        report["warehouse"] = f"FAIL {warehouse_problem}"
    else:
        wanted = {(i.exchange, i.symbol, interval) for interval in universe.intervals for i in universe.instruments_for(interval)}
        have = stored_instruments(warehouse, wanted)
        shown = public_url(warehouse.url)
        if not wanted & have and instance is not None and materialized_anything(instance, universe):
            report["warehouse"] = (f"FAIL {shown} holds none of the universe's instruments, but the Dagster instance has "
                                   "materializations of them: the runs wrote to another warehouse")
        else:
            report["warehouse"] = f"ok ({len(wanted & have)} of {len(wanted)} instrument-intervals stored, {shown})"
    if instance is None:
        report["daemon"] = "FAIL no Dagster instance (DAGSTER_HOME not set)"
    else:
        beats = instance.get_daemon_heartbeats()
        if not beats:
            report["daemon"] = "FAIL no heartbeat: is dagster-daemon (or dagster dev) running?"
        else:
            age = time.time() - max(b.timestamp for b in beats.values())
            report["daemon"] = f"ok ({age:.0f} s since last heartbeat)" if age < HEARTBEAT_STALE_SECONDS else f"FAIL stale ({age:.0f} s)"
    for name, config in universe.exchanges.items():
        try:
            build_source(name, config.model_copy(update={"timeout_seconds": 5})).ping()
            report[f"exchange {name}"] = "ok"
        except AuthenticationFailed as err:  # the venue answered, and refused the key or the plan
            report[f"exchange {name}"] = f"FAIL authentication failed: {err.detail}"
        except Exception as err:  # any other failure means unreachable; the message says which
            report[f"exchange {name}"] = f"FAIL unreachable: {type(err).__name__}"
    for name, config in universe.exchanges.items():
        if config.archive is not None:
            report[f"archive {name}"] = archive_health(config, [i for i in universe.instruments if i.exchange == name])
    return report


def archive_health(config: ExchangeConfig, instruments: list[Instrument], tries: int = 3) -> str:
    """``ok …`` if the archive answers where a file of one of the first ``tries`` instruments must
    be (one may be delisted or newly listed: the next is asked), else what failed."""
    archive = build_archive(config.model_copy(update={"timeout_seconds": 5}))
    failure = "ok (not probed: no instrument of this exchange in the universe)"
    for instrument in instruments[:tries]:
        try:
            return f"ok ({archive.probe(instrument.symbol, instrument.intervals[0], utc_day(now_ms()))})"
        except ArchiveUnavailable as err:
            failure = f"FAIL {err.reason}: {err.detail}"
            if err.reason != "not_published":
                break
    return failure


def healthy(report: dict[str, str]) -> bool:
    return all(value.startswith("ok") for value in report.values())
