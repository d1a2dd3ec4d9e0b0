"""`ohlcv`: the pipeline from a terminal, on the Dagster instance in ``$DAGSTER_HOME``, no daemon needed.

    ohlcv register                                     add the universe's instruments as partitions
    ohlcv backfill 1m binance.BTC-USDT 2026-11-01 [2026-11-07]
                                                       fetch and store those days (one ranged run per
                                                       366 days, executed here, recorded in Dagster)
    ohlcv backfill 1m all 2026-01-01 2026-11-07        every instrument of 1m, each from its start
                                                       (--parallel N: runs at once, default one per core)

A backfill registers the universe first, so it works on a fresh instance. Its runs are ordinary
Dagster runs (the UI shows them, their partitions turn green); exit status 0 only if every run
succeeded and no day was left incomplete with missing candles nothing explains (``--allow-incomplete``:
such days are named, and still exit 0).
"""

import argparse
import dataclasses
import datetime as dt
import os
import sys
import multiprocessing
import multiprocessing.util
import signal

import dagster as dg

from ohlcv_assets.cli import check_warehouse, exit_now, failure_cause, one_line_errors, sigterm_kept, universe_or_exit
from ohlcv_assets.core.names import (
    MAX_PARTITIONS_PER_RUN,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REASON_TAG,
    candles_key,
    partition_key_string,
)
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.core.settings import warehouse_url
from ohlcv_assets.core.universe import Instrument, Universe


def register(instance: dg.DagsterInstance, universe: Universe) -> None:
    changes = sync_instrument_partitions(instance, universe)
    for name, (added, removed) in sorted(changes.items()):
        print(f"{name}: added {', '.join(added) or 'none'}; removed {', '.join(removed) or 'none'}")
    if not changes:
        print("instrument partitions already match the universe")


def day_ranges(first: dt.date, last: dt.date, days_per_run: int) -> list[tuple[dt.date, dt.date]]:
    ranges, start = [], first
    while start <= last:
        end = min(last, start + dt.timedelta(days=days_per_run - 1))
        ranges.append((start, end))
        start = end + dt.timedelta(days=1)
    return ranges


def backfill_targets(universe: Universe, interval: str, names: str, first: dt.date, last: dt.date
                     ) -> list[tuple[Instrument, dt.date, dt.date]]:
    """(instrument, first day, last day) to run. Named instruments (comma-separated) must hold the
    whole range; ``all`` takes every instrument of the interval from its own start (those starting
    after ``last`` are left out)."""
    if names == "all":
        chosen = [(i, max(first, i.start), last) for i in universe.instruments_for(interval) if i.start <= last]
        if not chosen:
            raise SystemExit(f"ohlcv: no instrument of the universe has {interval} candles from {first} to {last}")
        return chosen
    targets = []
    for name in dict.fromkeys(n.strip() for n in names.split(",")):
        try:
            inst = universe.instrument(name)
        except KeyError as err:
            raise SystemExit(f"ohlcv: {err.args[0]}") from None
        if interval not in inst.intervals:
            raise SystemExit(f"ohlcv: {name} is not configured for {interval} (its intervals: {', '.join(inst.intervals)})")
        if first < inst.start:
            raise SystemExit(f"ohlcv: days of {name} must run from {inst.start} (the instrument's start); got {first}..{last}")
        targets.append((inst, first, last))
    return targets


def incomplete_days(result) -> list[str]:
    """The run's days with candles missing that nothing explains (an empty answer at the edge of
    what the run fetched: recorded as gaps for the gap loop), each with how many."""
    out = []
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        missing = int(metadata["unexplained_candles"].value) if "unexplained_candles" in metadata else 0
        if missing:
            expected = int(metadata["expected_candles"].value) if "expected_candles" in metadata else 0
            out.append(f"{event.partition} ({missing:,} of {expected:,} candles)")
    return sorted(out)


def default_parallel() -> int:
    """Runs in flight at once by default: one per core, at least two (while one run waits on the
    venue or on PostgreSQL, the other computes)."""
    return max(2, os.cpu_count() or 1)


def on_sqlite(instance: dg.DagsterInstance, url: str) -> bool:
    """SQLite (the warehouse or Dagster's storage) takes one writer at a time: runs at once would
    fail with "database is locked", so there a backfill runs one run after the other."""
    return url.startswith("sqlite") or any("sqlite" in type(storage).__name__.lower()
                                           for storage in (instance.run_storage, instance.event_log_storage))


@dataclasses.dataclass
class RunOutcome:
    written: int
    failed: str | None
    incomplete: list[str]


def run_range(instance: dg.DagsterInstance, defs: dg.Definitions, asset: dg.AssetsDefinition, interval: str,
              inst: Instrument, start: dt.date, end: dt.date) -> RunOutcome:
    """One ranged run of ``asset`` over days ``start``..``end`` of ``inst``, executed here."""
    print(f"candles/{interval} {inst.key} {start}..{end}: running", flush=True)
    with sigterm_kept():
        result = dg.materialize([asset], instance=instance, resources=defs.resources, raise_on_error=False, tags={
            RANGE_START_TAG: partition_key_string(inst.key, start), RANGE_END_TAG: partition_key_string(inst.key, end),
            REASON_TAG: "ohlcv backfill (command line)"})
    written = sum(int(e.materialization.metadata[k].value) for e in result.get_asset_materialization_events()
                  for k in ("candles_new", "candles_revised") if k in e.materialization.metadata)
    state = "succeeded" if result.success else "FAILED"
    print(f"candles/{interval} {inst.key} {start}..{end}: run {result.run_id} {state}, "
          f"{len(result.get_asset_materialization_events())} partitions, {written:,} candles written", flush=True)
    return RunOutcome(written, None if result.success else f"{inst.key} {start}..{end}: {failure_cause(result.all_events)}",
                      incomplete_days(result))


_WORKER: dict = {}  # a worker process's instance and definitions


def _start_worker(interval: str) -> None:
    from ohlcv_assets.definitions import build_definitions

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler, inherited by the fork
    instance = dg.DagsterInstance.get()
    multiprocessing.util.Finalize(None, instance.dispose, exitpriority=10)
    defs = build_definitions()
    _WORKER.update(instance=instance, defs=defs, asset=defs.get_assets_def(candles_key(interval)), interval=interval)


def _run_in_worker(target: tuple[Instrument, dt.date, dt.date]) -> RunOutcome:
    return run_range(_WORKER["instance"], _WORKER["defs"], _WORKER["asset"], _WORKER["interval"], *target)


def run_in_processes(runs: list[tuple[Instrument, dt.date, dt.date]], interval: str, workers: int) -> list[RunOutcome]:
    """The runs, ``workers`` at once, each worker a process forked from this one (nothing imported
    again; its own Dagster instance, resources and connections): Dagster's in-process execution
    reconfigures logging per run, so runs in threads of one process deadlock. SIGTERM ends the
    command and its workers at once (their runs in flight are left unfinished, as a killed run)."""
    import ohlcv_assets.definitions  # noqa: F401  (imported once, here, not again in every worker)

    context = multiprocessing.get_context("fork")
    sys.stdout.flush()
    sys.stderr.flush()
    handler = signal.getsignal(signal.SIGTERM)
    if handler is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        pool = context.Pool(workers, initializer=_start_worker, initargs=(interval,))
        try:
            outcomes = pool.map(_run_in_worker, runs, chunksize=1)
        except BaseException:
            # A run swallows SIGTERM until it ends (Dagster captures it in the worker's main thread),
            # so Pool.terminate alone would wait for every run in flight: the workers are killed.
            for child in multiprocessing.active_children():
                child.kill()
            pool.terminate()
            raise
        pool.close()
        pool.join()
        return outcomes
    finally:
        if signal.getsignal(signal.SIGTERM) is _exit_on_sigterm:
            signal.signal(signal.SIGTERM, handler)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # leaving the pool's block terminates its workers


def backfill(instance: dg.DagsterInstance, universe: Universe, interval: str, instruments: str, first: dt.date,
             last: dt.date, allow_incomplete: bool = False, parallel: int | None = None) -> bool:
    """Runs the days of each target as ranged runs (at most ``MAX_PARTITIONS_PER_RUN`` days each),
    ``parallel`` of them at once (default ``default_parallel()``; one at a time on SQLite), each in a
    worker process of its own: the instruments' downloads and writes overlap (both cores busy), every
    request still drawn from the venue's shared weight budget, and memory stays bounded by the runs
    in flight."""
    if interval not in universe.intervals:
        raise SystemExit(f"ohlcv: interval {interval!r} is not in the universe (intervals: {', '.join(universe.intervals)})")
    today = dt.datetime.now(dt.timezone.utc).date()
    if first > last or last > today:
        raise SystemExit(f"ohlcv: days must run to {today} (today) at the latest, first before last; got {first}..{last}")
    if parallel is not None and parallel < 1:
        raise SystemExit(f"ohlcv: --parallel must be at least 1; got {parallel}")
    targets = backfill_targets(universe, interval, instruments, first, last)
    check_warehouse(warehouse_url())
    sync_instrument_partitions(instance, universe)
    runs = []
    for inst, first_day, last_day in targets:
        if first_day > first:
            print(f"candles/{interval} {inst.key}: from {first_day}, its configured start", flush=True)
        runs += [(inst, start, end) for start, end in day_ranges(first_day, last_day, MAX_PARTITIONS_PER_RUN)]
    workers = min(len(runs), parallel or default_parallel(), 1 if on_sqlite(instance, warehouse_url()) else len(runs))
    if workers == 1:
        from ohlcv_assets.definitions import build_definitions  # only here: `ohlcv register` needs no assets

        defs = build_definitions()
        asset = defs.get_assets_def(candles_key(interval))
        outcomes = [run_range(instance, defs, asset, interval, *r) for r in runs]
    else:
        outcomes = run_in_processes(runs, interval, workers)
    failed = [o.failed for o in outcomes if o.failed]
    incomplete = sorted(day for o in outcomes for day in o.incomplete)
    written_total = sum(o.written for o in outcomes)
    if len(targets) > 1 or failed:
        print(f"candles/{interval}: {len(targets)} instruments, {written_total:,} candles written, "
              + (f"{len(failed)} runs FAILED ({'; '.join(failed)})" if failed else "every run succeeded"), flush=True)
    if incomplete:
        print(f"candles/{interval}: {len(incomplete)} day(s) INCOMPLETE, missing candles the exchange answered empty at the "
              f"edge of the run, recorded as gaps to fill: {'; '.join(incomplete)}"
              + (" (allowed by --allow-incomplete)" if allow_incomplete else
                 " (run them again, or the gap backfill will; --allow-incomplete exits 0)"), flush=True)
    return not failed and (allow_incomplete or not incomplete)


@one_line_errors("ohlcv")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohlcv", description="Register instruments and backfill candles without the daemon.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("register", help="add the universe's instruments as partitions (remove those taken out)")
    fill = commands.add_parser("backfill", help="fetch and store days of one instrument and interval")
    fill.add_argument("interval", help="e.g. 1m")
    fill.add_argument("instrument", help="partition key of the instrument, e.g. binance.BTC-USDT; several, comma-separated; "
                                         "or all (every instrument of the interval, each from its start)")
    fill.add_argument("first", type=dt.date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    fill.add_argument("last", type=dt.date.fromisoformat, nargs="?", help="last day (default: the first)")
    fill.add_argument("--allow-incomplete", action="store_true",
                      help="exit 0 even if a day is left with missing candles nothing explains (they are still named)")
    fill.add_argument("--parallel", type=int, metavar="N",
                      help=f"runs in flight at once (default: one per core, at least 2; here {default_parallel()}); "
                           "one at a time on SQLite")
    args = parser.parse_args(argv)
    universe = universe_or_exit("ohlcv")
    with dg.DagsterInstance.get() as instance:
        if args.command == "register":
            register(instance, universe)
            code = 0
        else:
            code = 0 if backfill(instance, universe, args.interval, args.instrument, args.first, args.last or args.first,
                                 args.allow_incomplete, args.parallel) else 1
    return exit_now(code) if argv is None else code  # the command's own process: no interpreter teardown


if __name__ == "__main__":
    sys.exit(main())
