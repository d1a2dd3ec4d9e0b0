"""Side by side with freqtrade: the same simulated Binance (REST and public-data archive) on 127.0.0.1,
whole processes timed from start to exit, fresh targets, every row run ``--rounds`` times per tool
(the best round is shown, every round printed):

  rest_limited  REST, each tool's shipped rate limiter (the project's shared weight budget at
                Binance's 6,000 weight/min; freqtrade's ccxt limiter)
  rest          REST, both limiters off (the project: a weight budget of 10^9; freqtrade:
                ``enableRateLimit: false``)
  archive       the archive, one instrument (BTC/USDT) over the span
  archive_many  the archive, ``--instruments`` instruments over the span, one command each
  raw           the limits, whole processes: GET every REST page without parsing; download, unzip
                and parse the span's monthly zips

The project runs ``ohlcv backfill 1m <instrument|all> FIRST LAST`` on a fresh PostgreSQL warehouse
and a fresh Dagster instance (deploy/dagster.yaml, storage in PostgreSQL; ``dagster instance
migrate`` beforehand, not timed); freqtrade 2026.9 runs ``freqtrade download-data`` (feather, a
fresh data directory) in its own virtual environment (``scripts/freqtrade-venv.sh``). freqtrade's
REST URLs come from its config (``exchange.ccxt_config.urls``); its archive root is hard-coded
(``binance_public_data.binance_vision_ohlcv_zip_url``), so the freqtrade process gets a
``sitecustomize.py`` on its PYTHONPATH that rebinds that function to the simulator's root.
The simulator has no weight limit of its own here (so that back-to-back rounds are never refused).
Each round also reports the CPU seconds of the timed process tree (user + system) and, for the
project, of the PostgreSQL backends serving its two databases (sampled from /proc), since on a shared machine the wall clock mostly measures the others' load;
``--project-prefix`` runs the project's command under another (a profiler).

    python benchmarks/vs_freqtrade.py --postgres postgresql://postgres@127.0.0.1:55432/postgres \\
        [--first 2024-01-01 --last 2024-12-31] [--rounds 2] [--instruments 10] [--rows rest,archive]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = ["rest_limited", "rest", "archive", "archive_many", "raw"]
LABELS = {"rest_limited": "REST, each tool's shipped rate limiter", "rest": "REST, both limiters off",
          "archive": "archive, one instrument", "archive_many": "archive, {n} instruments, one command"}

SITECUSTOMIZE = '''"""benchmarks/vs_freqtrade.py: freqtrade's Binance archive root is hard-coded; point it at the simulator."""
import os

_root = os.environ.get("FT_BENCH_ARCHIVE_ROOT")
if _root:
    import freqtrade.exchange.binance_public_data as _bpd

    _url = _bpd.binance_vision_ohlcv_zip_url

    def binance_vision_ohlcv_zip_url(symbol, timeframe, candle_type, date):
        return _url(symbol, timeframe, candle_type, date).replace("https://data.binance.vision", _root, 1)

    _bpd.binance_vision_ohlcv_zip_url = binance_vision_ohlcv_zip_url
'''


def symbols(instruments: int) -> list[str]:
    return ["BTC/USDT"] + [f"S{n:03d}/USDT" for n in range(instruments - 1)]


def simulator_yaml(instruments: int) -> str:
    return "weight_limit: 1000000000\nsymbols:\n" + "".join(
        f"  - {{base: {s.split('/')[0]}, quote: USDT, listed: 2017-08-17, price: {90000 if s == 'BTC/USDT' else 10 + n}}}\n"
        for n, s in enumerate(symbols(instruments)))


def timed(command: list[str], databases: tuple[str, ...] = (), **kwargs) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Runs a whole process: its answer, its wall seconds, its CPU seconds (user + system of the
    process and every descendant it waited for: the worker processes of ``ohlcv backfill``) and the
    CPU seconds of the PostgreSQL backends serving ``databases`` (sampled every 0.1 s from /proc
    while it runs: a backend's last tenth of a second may be missed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    backends: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not done.wait(0.1):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    title = (entry / "cmdline").read_bytes().decode(errors="replace")
                    if not title.startswith("postgres:") or not any(f" {d} " in title for d in databases):
                        continue
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                backends[int(entry.name)] = sum(int(f) for f in fields[11:13]) / ticks

    sampler = threading.Thread(target=sample, daemon=True)
    if databases:
        sampler.start()
    began = time.perf_counter()
    answer = subprocess.run(command, **kwargs)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    if databases:
        sampler.join()
    return answer, seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), sum(backends.values())


def day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)


# ---- the project ----

def project_universe(simulator: str, pairs: list[str], first: dt.date, limited: bool, archive: bool) -> str:
    extra = ("" if limited else ", weight_limit: 1000000000") + (f", archive: {{url: '{simulator}/archive/binance'}}" if archive else "")
    return (f"exchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3'{extra}}}\ninstruments:\n"
            + "".join(f"  - {{exchange: binance, symbol: {s}, intervals: [1m], start: {first}}}\n" for s in pairs))


def run_project(args, simulator: str, pairs: list[str], limited: bool, archive: bool, tmp: Path) -> dict:
    from common import fresh_database

    from ohlcv_assets.defs.instance_storage import storage_env

    warehouse = fresh_database(args.postgres, "bench_vsft_warehouse")
    storage = fresh_database(args.postgres, "bench_vsft_dagster")
    home = tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    universe = tmp / "universe.yaml"
    universe.write_text(project_universe(simulator, pairs, args.first, limited, archive))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))}, "DAGSTER_HOME": str(home),
           "OHLCV_UNIVERSE": str(universe), "OHLCV_WAREHOUSE_URL": warehouse, **storage_env(storage)}
    subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
    target = "all" if len(pairs) > 1 else "binance." + pairs[0].replace("/", "-")
    command = [*shlex.split(args.project_prefix), str(Path(sys.executable).parent / "ohlcv"), "backfill", "1m", target,
               str(args.first), str(args.last)]
    answer, seconds, cpu, server = timed(command, ("bench_vsft_warehouse", "bench_vsft_dagster"), env=env, capture_output=True, text=True)
    if answer.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{answer.stdout[-3000:]}{answer.stderr[-3000:]}")
    import psycopg
    with psycopg.connect(warehouse) as connection:
        stored = connection.execute("SELECT count(*) FROM candles").fetchone()[0]
    return {"seconds": seconds, "cpu": cpu, "server_cpu": server, "candles": stored}


# ---- freqtrade ----

def freqtrade_python() -> str:
    answer = subprocess.run([str(REPO / "scripts" / "freqtrade-venv.sh")], capture_output=True, text=True, check=True)
    return answer.stdout.strip().splitlines()[-1]


def run_freqtrade(args, python: str, simulator: str, pairs: list[str], limited: bool, archive: bool, tmp: Path) -> dict:
    datadir = tmp / "ft_data"
    ccxt = {"urls": {"api": {"public": f"{simulator}/api/v3"}}, "options": {"fetchMarkets": {"types": ["spot"]}},
            "enableRateLimit": limited}
    config = {"exchange": {"name": "binance", "pair_whitelist": pairs, "ccxt_config": ccxt, "ccxt_async_config": ccxt,
                           "only_from_ccxt": not archive},
              "stake_currency": "USDT", "trading_mode": "spot", "dataformat_ohlcv": "feather", "dry_run": True}
    (tmp / "ft_config.json").write_text(json.dumps(config))
    (tmp / "ft_site").mkdir(exist_ok=True)
    (tmp / "ft_user").mkdir(exist_ok=True)
    (tmp / "ft_site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(tmp / "ft_site"), "FT_BENCH_ARCHIVE_ROOT": f"{simulator}/archive/binance"}
    timerange = f"{args.first:%Y%m%d}-{args.last + dt.timedelta(days=1):%Y%m%d}"
    command = [python, "-m", "freqtrade", "download-data", "--config", str(tmp / "ft_config.json"), "--datadir", str(datadir),
               "--userdir", str(tmp / "ft_user"), "--pairs", *pairs, "--timeframes", "1m", "--timerange", timerange,
               "--data-format-ohlcv", "feather", "--trading-mode", "spot"]
    answer, seconds, cpu, _ = timed(command, env=env, capture_output=True, text=True, cwd=tmp)
    log = answer.stdout + answer.stderr
    if answer.returncode:
        raise SystemExit(f"freqtrade download-data failed:\n{log[-3000:]}")
    if archive and "fast download" in log.lower() and "falling back" in log.lower():
        raise SystemExit(f"freqtrade did not use the archive:\n{log[-3000:]}")
    import pyarrow.feather as feather
    files = sorted(datadir.glob("*-1m.feather"))
    candles = sum(feather.read_table(f).num_rows for f in files)
    if len(files) != len(pairs):
        raise SystemExit(f"freqtrade wrote {len(files)} files for {len(pairs)} pairs:\n{log[-3000:]}")
    return {"seconds": seconds, "cpu": cpu, "candles": candles}


# ---- the limits (whole processes) ----

RAW_REST = """
import http.client, sys
from urllib.parse import urlparse
url, start, end = urlparse(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
connection = http.client.HTTPConnection(url.hostname, url.port)
pages = 0
for since in range(start, end, 60_000_000):
    connection.request("GET", f"/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={since}&endTime={min(since + 60_000_000, end) - 1}&limit=1000")
    connection.getresponse().read()
    pages += 1
print(pages)
"""

RAW_ARCHIVE = """
import sys, urllib.request
from ohlcv_assets.archive.binance_vision import parse_klines_csv, unzip_single
rows = 0
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, timeout=60) as answer:
        rows += len(parse_klines_csv(unzip_single(answer.read(), url)))
print(rows)
"""


def month_urls(simulator: str, first: dt.date, last: dt.date, symbol: str = "BTCUSDT") -> list[str]:
    months = sorted({(d.year, d.month) for d in days(first, last)})
    root = f"{simulator}/archive/binance/data/spot/monthly/klines/{symbol}/1m"
    return [f"{root}/{symbol}-1m-{y:04d}-{m:02d}.zip" for y, m in months]


def day_urls(simulator: str, first: dt.date, last: dt.date, symbol: str) -> list[str]:
    root = f"{simulator}/archive/binance/data/spot/daily/klines/{symbol}/1m"
    return [f"{root}/{symbol}-1m-{d}.zip" for d in days(first, last)]


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def run_raw(args, simulator: str, which: str) -> dict:
    if which == "rest":
        command = [sys.executable, "-c", RAW_REST, simulator, str(day_ms(args.first)), str(day_ms(args.last + dt.timedelta(days=1)))]
    else:
        command = [sys.executable, "-c", RAW_ARCHIVE, *month_urls(simulator, args.first, args.last)]
    began = time.perf_counter()
    answer = subprocess.run(command, capture_output=True, text=True, check=True)
    return {"seconds": time.perf_counter() - began, "count": int(answer.stdout.strip())}


def warm_archive(simulator: str, first: dt.date, last: dt.date, pairs: list[str]) -> None:
    """Every file either tool asks for, built once by the simulator and then served from memory
    (as a static archive would be), so that no timed run pays for building them."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    urls = [u for p in pairs for sym in [p.replace("/", "")]
            for u in month_urls(simulator, first, last, sym) + day_urls(simulator, first, last, sym)]
    urls += [u + ".CHECKSUM" for u in urls]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda u: urllib.request.urlopen(u, timeout=120).read(), urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server (fresh databases are made on it)")
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2024, 1, 1), help="first day (default 2024-01-01)")
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2024, 12, 31), help="last day (default 2024-12-31)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--instruments", type=int, default=10, help="instruments of the archive_many row")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--tools", default="project,freqtrade", help="project, freqtrade or both")
    parser.add_argument("--project-prefix", default="", metavar="COMMAND",
                        help="run the project's command under this one, e.g. a profiler: "
                             "--project-prefix 'py-spy record --subprocesses -o archive.svg --'")
    args = parser.parse_args()
    rows = args.rows.split(",")
    tools = args.tools.split(",")
    sys.path.insert(0, str(Path(__file__).parent))
    from common import running_simulator

    python = freqtrade_python() if "freqtrade" in tools else None
    results: dict[tuple[str, str], list[dict]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        config = Path(tmp) / "simulator.yaml"
        config.write_text(simulator_yaml(args.instruments))
        with running_simulator(config) as (simulator, _):
            if {"archive", "archive_many", "raw"} & set(rows):
                warm_archive(simulator, args.first, args.last, symbols(args.instruments if "archive_many" in rows else 1))
            for row in rows:
                pairs = symbols(args.instruments) if row == "archive_many" else ["BTC/USDT"]
                for round_ in range(args.rounds):
                    for tool in tools:
                        if row == "raw":
                            if tool != "project":
                                continue
                            for which in ("rest", "archive"):
                                results.setdefault(("raw", which), []).append(run_raw(args, simulator, which))
                            continue
                        with tempfile.TemporaryDirectory(dir=tmp) as work:
                            kwargs = {"limited": row == "rest_limited", "archive": row.startswith("archive")}
                            out = (run_project(args, simulator, pairs, tmp=Path(work), **kwargs) if tool == "project" else
                                   run_freqtrade(args, python, simulator, pairs, tmp=Path(work), **kwargs))
                        results.setdefault((row, tool), []).append(out)
                        loads.append(os.getloadavg()[0])
                        server = f" (+ PostgreSQL {out['server_cpu']:.2f})" if "server_cpu" in out else ""
                        print(f"{row} {tool} round {round_ + 1}: {out['seconds']:.2f} s, {out['cpu']:.2f} CPU-s{server}, "
                              f"{out['candles']:,} candles, load {loads[-1]:.2f}",
                              file=sys.stderr, flush=True)
    print_table(args, rows, tools, results, loads)


def print_table(args, rows, tools, results, loads) -> None:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    span = (args.last - args.first).days + 1
    print(f"\n{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; BTC/USDT 1m, {args.first}..{args.last} ({span} days, "
          f"{span * 1440:,} candles an instrument); best of {args.rounds} rounds, whole processes")
    print(f"load: 1-minute load average {min(loads):.2f}–{max(loads):.2f} during the runs on {os.cpu_count()} cores; at the end: {uptime}\n")
    print("| work | this project | freqtrade | freqtrade / project | rounds (project; freqtrade) | CPU-s of each round (project + its PostgreSQL backends; freqtrade) |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        if row == "raw":
            continue
        label = LABELS[row].format(n=args.instruments)
        project, freqtrade = results.get((row, "project")), results.get((row, "freqtrade"))
        p = min(r["seconds"] for r in project) if project else None
        f = min(r["seconds"] for r in freqtrade) if freqtrade else None
        candles = " / ".join(f"{rs[0]['candles']:,}" for rs in (project, freqtrade) if rs)
        ratio = f"{f / p:.2f}" if p and f else ""
        rounds = "; ".join(", ".join(f"{r['seconds']:.1f}" for r in rs) for rs in (project, freqtrade) if rs)
        cpu = "; ".join(", ".join(f"{r['cpu']:.1f}" + (f" + {r['server_cpu']:.1f}" if "server_cpu" in r else "") for r in rs)
                        for rs in (project, freqtrade) if rs)
        print(f"| {label} ({candles} candles) | {f'{p:.2f} s' if p else ''} | {f'{f:.2f} s' if f else ''} | {ratio} | {rounds} | {cpu} |")
    if ("raw", "rest") in results:
        rest, archive = (min(r["seconds"] for r in results[("raw", w)]) for w in ("rest", "archive"))
        pages = results[("raw", "rest")][0]["count"]
        print(f"| raw limit: GET the {pages} pages, no parse / download+unzip+parse the monthly zips (whole processes) "
              f"| {rest:.2f} s / {archive:.2f} s | | | | |")
        if ("archive", "project") in results:
            best = min(r["seconds"] for r in results[("archive", "project")])
            print(f"\nthe project's archive row is {best / archive:.1f}× its raw limit")


if __name__ == "__main__":
    main()
