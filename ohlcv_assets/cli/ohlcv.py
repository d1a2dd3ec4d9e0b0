"""`ohlcv`: the pipeline from a terminal, on the Dagster instance in ``$DAGSTER_HOME``, no daemon needed.

    ohlcv register                                     add the universe's instruments as partitions
    ohlcv backfill 1m binance.BTC-USDT 2026-11-01 [2026-11-07]
                                                       fetch and store those days (one ranged run per
                                                       366 days, executed here, recorded in Dagster)
    ohlcv backfill 1m all 2026-01-01 2026-11-07        every instrument of 1m, each from its start

A backfill registers the universe first, so it works on a fresh instance. Its runs are ordinary
Dagster runs (the UI shows them, their partitions turn green); exit status 0 only if every run
succeeded and no day was left incomplete with missing candles nothing explains (``--allow-incomplete``:
such days are named, and still exit 0).
"""

import argparse
import datetime as dt
import sys

import dagster as dg

from ohlcv_assets.cli import check_warehouse, failure_cause, one_line_errors, sigterm_kept, universe_or_exit
from ohlcv_assets.definitions import build_definitions
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


def backfill(instance: dg.DagsterInstance, universe: Universe, interval: str, instruments: str, first: dt.date,
             last: dt.date, allow_incomplete: bool = False) -> bool:
    if interval not in universe.intervals:
        raise SystemExit(f"ohlcv: interval {interval!r} is not in the universe (intervals: {', '.join(universe.intervals)})")
    today = dt.datetime.now(dt.timezone.utc).date()
    if first > last or last > today:
        raise SystemExit(f"ohlcv: days must run to {today} (today) at the latest, first before last; got {first}..{last}")
    targets = backfill_targets(universe, interval, instruments, first, last)
    check_warehouse(warehouse_url())
    sync_instrument_partitions(instance, universe)
    defs = build_definitions()
    asset = defs.get_assets_def(candles_key(interval))
    failed, incomplete, written_total = [], [], 0
    for inst, first_day, last_day in targets:
        if first_day > first:
            print(f"candles/{interval} {inst.key}: from {first_day}, its configured start", flush=True)
        for start, end in day_ranges(first_day, last_day, MAX_PARTITIONS_PER_RUN):
            print(f"candles/{interval} {inst.key} {start}..{end}: running", flush=True)
            with sigterm_kept():
                result = dg.materialize([asset], instance=instance, resources=defs.resources, raise_on_error=False, tags={
                    RANGE_START_TAG: partition_key_string(inst.key, start), RANGE_END_TAG: partition_key_string(inst.key, end),
                    REASON_TAG: "ohlcv backfill (command line)"})
            written = sum(int(e.materialization.metadata[k].value) for e in result.get_asset_materialization_events()
                          for k in ("candles_new", "candles_revised") if k in e.materialization.metadata)
            written_total += written
            state = "succeeded" if result.success else "FAILED"
            print(f"candles/{interval} {inst.key} {start}..{end}: run {result.run_id} {state}, "
                  f"{len(result.get_asset_materialization_events())} partitions, {written:,} candles written", flush=True)
            if not result.success:
                failed.append(f"{inst.key} {start}..{end}: {failure_cause(result.all_events)}")
            incomplete += incomplete_days(result)
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
    args = parser.parse_args(argv)
    universe = universe_or_exit("ohlcv")
    with dg.DagsterInstance.get() as instance:
        if args.command == "register":
            register(instance, universe)
            return 0
        return 0 if backfill(instance, universe, args.interval, args.instrument, args.first, args.last or args.first,
                             args.allow_incomplete) else 1


if __name__ == "__main__":
    sys.exit(main())
