"""Every bad universe fails at load time with one clear message naming the entry."""

import datetime as dt
import os
import subprocess
import sys

import pytest

from ohlcv_assets.core.universe import UniverseError, expand_env, load_universe, parse_universe

VALID = """
exchanges:
  binance: {ccxt_id: binance, api_url: "http://127.0.0.1:1/api/v3"}
  kraken: {ccxt_id: kraken}
instruments:
  - {exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h], start: 2024-01-01}
  - {exchange: kraken, symbol: ETH/USD, intervals: [1h], start: 2024-01-01}
"""
TODAY = dt.date(2026, 11, 23)


def test_a_valid_universe_loads():
    universe = parse_universe(VALID, today=TODAY)
    assert universe.intervals == ["1m", "1h"]
    assert [i.key for i in universe.instruments_for("1h")] == ["binance.BTC-USDT", "kraken.ETH-USD"]
    assert [i.key for i in universe.instruments_for("1m")] == ["binance.BTC-USDT"]
    assert universe.exchanges["binance"].api_url == "http://127.0.0.1:1/api/v3"


def test_the_bundled_demo_universe_loads(monkeypatch):
    monkeypatch.delenv("OHLCV_UNIVERSE", raising=False)
    universe = load_universe()
    assert universe.instruments and universe.exchanges["binance"].api_url.endswith("/api/v3")


@pytest.mark.parametrize("old,new,message", [
    ("ccxt_id: kraken", "ccxt_id: krakken", r"exchanges\.kraken: unknown ccxt exchange id 'krakken'"),
    ("intervals: [1h], start", "intervals: [1h, 3m], start",
     r"instruments\[1\] \(kraken ETH/USD\): interval '3m' is not offered by kraken"),
    ("intervals: [1m, 1h]", "intervals: [1m, 7m]", r"instruments\[0\] \(binance BTC/USDT\)\.intervals: .*does not divide a day"),
    ("ETH/USD, intervals: [1h], start: 2024-01-01", "ETH/USD, intervals: [1h], start: 2027-01-01",
     r"instruments\[1\] \(kraken ETH/USD\): start 2027-01-01 is in the future"),
    ("exchange: kraken, symbol: ETH/USD", "exchange: binance, symbol: BTC/USDT",
     r"instruments\[1\] \(binance BTC/USDT\): duplicate of instruments\[0\]"),
    ("start: 2024-01-01}\n  - {exchange: kraken", "start: 2024-01-01, colour: red}\n  - {exchange: kraken",
     r"instruments\[0\] \(binance BTC/USDT\)\.colour: unknown key"),
    ("binance: {ccxt_id: binance,", "binance: {ccxt_id: binance, rate: 5,", r"exchanges\.binance\.rate: unknown key"),
    ("binance: {ccxt_id: binance,", "binance: {ccxt_id: binance, archive: {url: 'http://127.0.0.1:1', market: futures/um},",
     r"exchanges\.binance: .*archive\.market: binance's instruments are spot markets .*'futures/um' would store another "
     r"market's candles"),
    ("binance: {ccxt_id: binance,", "binance: {ccxt_id: binanceus, archive: {url: 'http://127.0.0.1:1'},",
     r"exchanges\.binance: .*venue 'binanceus' has no bulk archive we read"),
    ("exchange: kraken, symbol", "exchange: bitstamp, symbol",
     r"instruments\[1\] \(bitstamp ETH/USD\): exchange 'bitstamp' is not declared"),
])
def test_each_bad_entry_gets_a_clear_error(old, new, message):
    assert old in VALID
    with pytest.raises(UniverseError, match=message):
        parse_universe(VALID.replace(old, new, 1), today=TODAY)


def test_environment_variables_expand_with_defaults():
    raw = {"url": "${SIM:-http://127.0.0.1:8765}/api", "n": 3, "list": ["${NAME}"]}
    assert expand_env(raw, {"NAME": "x"}) == {"url": "http://127.0.0.1:8765/api", "n": 3, "list": ["x"]}
    assert expand_env(raw, {"NAME": "x", "SIM": "http://h:1"})["url"] == "http://h:1/api"
    with pytest.raises(UniverseError, match=r"\$\{NAME\}"):
        expand_env(raw, {})


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(UniverseError, match="does not exist"):
        load_universe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("retention,message", [
    ("retention: {7m: {keep_days: 3}}", r"retention\.7m: interval '7m' does not divide a day"),
    ("retention: {1m: {keep_days: 0}}", r"retention\.1m\.keep_days: Input should be greater than 0"),
    ("retention: {1h: {keep_days: 30, requires: [1m]}}", r"retention\.1h\.requires: '1m' is not a coarser multiple of 1h"),
    ("retention: {1m: {keep_days: 30, requires: [1h]}, 1h: {keep_days: 10}}",
     r"retention\.1m\.requires: 1h is kept for fewer days than 1m"),
    ("export: {formats: [csv]}", r"export\.formats\.0: Input should be 'parquet' or 'freqtrade'"),
])
def test_bad_retention_and_export_settings_are_clear_errors(retention, message):
    with pytest.raises(UniverseError, match=message):
        parse_universe(VALID + retention + "\n", today=TODAY)


def test_retention_requires_every_coarser_interval_unless_told():
    universe = parse_universe(VALID + "retention: {1m: {keep_days: 30}}\n", today=TODAY)
    btc = universe.instrument("binance.BTC-USDT")
    assert universe.aggregates_required(btc, "1m") == ("1h",)
    told = parse_universe(VALID + "retention: {1m: {keep_days: 30, requires: []}}\n", today=TODAY)
    assert told.aggregates_required(btc, "1m") == ()


def test_sensor_seconds_sets_how_often_the_instrument_and_gap_sensors_look(tmp_path):
    from ohlcv_assets.definitions import build_definitions

    (tmp_path / "u.yaml").write_text(VALID + "sensor_seconds: 7\n")
    defs = build_definitions(str(tmp_path / "u.yaml"), warehouse_url=f"sqlite:///{tmp_path}/w.db")
    intervals = {s.name: s.minimum_interval_seconds for s in defs.sensors}
    looking = ["instrument_partitions", "gap_backfill_1m", "gap_backfill_1h"]
    assert {name: intervals[name] for name in looking} == dict.fromkeys(looking, 7)
    assert intervals["automation"] == 30
    assert parse_universe(VALID, today=TODAY).sensor_seconds == 30
    with pytest.raises(UniverseError, match=r"sensor_seconds: .*greater than or equal to 5"):
        parse_universe(VALID + "sensor_seconds: 2\n", today=TODAY)


def test_profiled_venues_offer_what_ccxt_says_they_offer():
    import ccxt

    from ohlcv_assets.venues import PROFILES

    for name, profile in PROFILES.items():
        if profile.source == "ccxt":
            assert profile.intervals == tuple(getattr(ccxt, name)().timeframes), name


def test_loading_the_code_location_imports_neither_ccxt_nor_alembic():
    """Every run process loads it: ccxt (0.4 s) and Alembic (0.3 s) are imported when a venue's
    REST source sends its first request or a migration runs, not before."""
    import subprocess
    import sys

    probe = ("import sys; from ohlcv_assets.definitions import build_definitions; build_definitions(); "
             "from ohlcv_assets.exchange.registry import build_source; from ohlcv_assets.core.universe import load_universe; "
             "build_source('binance', load_universe().exchanges['binance']); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'ccxt', 'alembic'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_code_location_resolves_relative_paths_where_dagster_was_started(universe_file, tmp_path, monkeypatch):
    """`dagster dev` loads the code location in its own process; its runs start elsewhere: the
    settings are made absolute at load, and a SQLite directory that does not exist fails the load."""
    from ohlcv_assets import definitions
    from ohlcv_assets.core.errors import ConfigurationError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OHLCV_UNIVERSE", universe_file.name)
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", "sqlite:///w.db")
    loaded = definitions.defs.load_fn()
    assert os.environ["OHLCV_UNIVERSE"] == str(universe_file)
    assert os.environ["OHLCV_WAREHOUSE_URL"] == f"sqlite:///{tmp_path / 'w.db'}"
    assert loaded.resources["exchange"].universe_path == str(universe_file)
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", "sqlite:///nowhere/w.db")
    with pytest.raises(ConfigurationError, match=f"is in {tmp_path / 'nowhere'}, which does not exist"):
        definitions.defs.load_fn()
    assert not (tmp_path / "nowhere").exists()


COUNT_UNIVERSE_READS = """
import sys

universe_file = sys.argv[1]
opened = []
sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and str(args[0]) == universe_file else None)

from ohlcv_assets.cli.ohlcv import main
from ohlcv_assets.definitions import build_definitions

assert main(["register"]) == 0
defs = build_definitions()
exchange = defs.resources["exchange"]
assert sorted(exchange.universe.exchanges) == ["binance", "kraken"]
print(len(opened))
"""


def test_the_universe_file_is_read_once_per_process(tmp_path):
    """`ohlcv register`, then the definitions and the exchange resource they build, in one process:
    the universe file is opened once (Python's audit hook sees every open of the process)."""
    universe = tmp_path / "universe.yaml"
    universe.write_text(VALID)
    env = {**os.environ, "OHLCV_UNIVERSE": str(universe), "DAGSTER_HOME": str(tmp_path),
           "OHLCV_WAREHOUSE_URL": f"sqlite:///{tmp_path}/warehouse.db"}
    answer = subprocess.run([sys.executable, "-c", COUNT_UNIVERSE_READS, str(universe)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split()[-1] == "1"


PERPS = """
exchanges:
  perps: {ccxt_id: binanceusdm, api_url: "http://127.0.0.1:1/fapi/v1"}
  generic: {venue: ccxt, ccxt_id: binanceusdm}
  binance: {ccxt_id: binance}
  okx: {venue: ccxt, ccxt_id: okx}
  hyper: {venue: ccxt, ccxt_id: hyperliquid}
instruments:
  - {exchange: perps, symbol: BTC/USDT:USDT, intervals: [1m, 1h], start: 2026-10-01, series: [mark, index, premium, funding]}
  - {exchange: generic, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, funding]}
"""


def test_a_perpetual_says_which_series_it_wants():
    universe = parse_universe(PERPS, today=TODAY)
    assert universe.series_codes() == ["funding", "idx_1m", "idx_1h", "mark_1m", "mark_1h", "prem_1m", "prem_1h"]
    assert [i.key for i in universe.instruments_for_series("mark_1h")] == ["perps.BTC-USDT_USDT", "generic.ETH-USDT_USDT"]
    assert [i.key for i in universe.instruments_for_series("mark_1m")] == ["perps.BTC-USDT_USDT"]
    assert universe.intervals == ["1m", "1h"]  # the trade candles' intervals, as before
    assert parse_universe(VALID, today=TODAY).series_codes() == []


@pytest.mark.parametrize("entry,message", [
    ("{exchange: okx, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, premium]}",
     r"instruments\[2\] \(okx BTC/USDT:USDT\): series premium is not offered by okx \(ccxt has\['fetchPremiumIndexOHLCV'\] = False\)"),
    ("{exchange: hyper, symbol: BTC/USDC:USDC, intervals: [1h], start: 2026-10-01, series: [funding, mark]}",
     r"series mark is not offered by hyperliquid \(ccxt has\['fetchMarkOHLCV'\] = "),
    ("{exchange: binance, symbol: BTC/USDT, intervals: [1h], start: 2026-10-01, series: [mark]}",
     r"instruments\[2\] \(binance BTC/USDT\): series mark: series need a perpetual contract symbol \(e\.g\. 'BTC/USDT:USDT'\)"),
    ("{exchange: perps, symbol: SOL/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [funding, funding]}",
     r"series: .*series repeat"),
    ("{exchange: perps, symbol: SOL/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [basis]}",
     r"instruments\[2\] \(perps SOL/USDT:USDT\)\.series\.0: Input should be 'mark', 'index', 'premium', 'funding' or "
     r"'open_interest'"),
    ("{exchange: hyper, symbol: BTC/USDC:USDC, intervals: [1h], start: 2026-10-01, series: [funding, open_interest]}",
     r"series open_interest is not offered by hyperliquid \(ccxt has\['fetchOpenInterestHistory'\] = False\)"),
])
def test_a_series_the_venue_lacks_is_refused_naming_it(entry, message):
    with pytest.raises(UniverseError, match=message):
        parse_universe(PERPS + f"  - {entry}\n", today=TODAY)


def test_profiled_perpetual_venues_offer_the_series_ccxt_says_they_offer():
    from ohlcv_assets.venues import PROFILES
    from ohlcv_assets.venues.series import ccxt_offers

    for name, profile in PROFILES.items():
        for series in profile.series or ():
            assert ccxt_offers(profile.ccxt_class, series)[0], (name, series)
