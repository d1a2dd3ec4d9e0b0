"""The venue registry is the ``venues`` package: a venue is a module exposing ``PROFILE``, and a
plain ccxt venue is that one file, nothing else edited; every candle source speaks the whole
``CandleSource`` interface."""

import inspect
import sys
import textwrap

import dagster as dg
import pytest

import ohlcv_assets.venues as venues
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.exchange.registry import SOURCE_CLASSES, build_source, source_class
from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.core.universe import ExchangeConfig, UniverseError, parse_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import PLAIN_DAY, simulator_candles

# All a plain ccxt venue needs, as a new file in ``ohlcv_assets/venues/`` would hold it. The simulator
# speaks Binance's protocol, so the venue's ccxt class is ccxt's ``binance`` (a venue named as its
# ccxt id, the usual case, leaves ``ccxt_id`` out); nothing of Binance's own profile (raw klines,
# spot-only markets) comes with it: its candles go through ccxt's fetch_ohlcv, and it asks for spot
# markets only, as a real venue module declares what its venue needs.
NEW_VENUE = '''
"""A Binance-protocol venue known to no other file (the test's)."""

from ohlcv_assets.venues.profile import VenueProfile

PROFILE = VenueProfile(
    name="klinemirror", source="ccxt", page_limit=500, history_candles=None, omits_empty=False, calendar=None,
    intervals=None, weight_limit=6000, weight_window_seconds=60.0, candles_weight=2, markets_weight=20,
    used_weight_header=None, symbol_pattern=r"[A-Z0-9]+/[A-Z0-9]+", symbol_example="BTC/USDT",
    rate_limit_model="the simulator's", ccxt_id="binance", ccxt_settings={"options": {"fetchMarkets": {"types": ["spot"]}}},
)
'''


def new_venue_universe(url: str) -> str:
    return textwrap.dedent(f"""
        exchanges:
          mirror: {{venue: klinemirror, api_url: "{url}/api/v3", timeout_seconds: 2, weight_limit: 100000, retry_base_seconds: 0.05}}
        instruments:
          - {{exchange: mirror, symbol: BTC/USDT, intervals: [1h], start: 2026-10-01}}
        """)


@pytest.fixture
def venue_file(tmp_path, monkeypatch):
    """The venue's module in a folder of its own, put on the package's path, then found by the
    registry; afterwards gone again (other tests hold every registered venue to ccxt's facts)."""
    folder = tmp_path / "more_venues"
    folder.mkdir()
    (folder / "klinemirror.py").write_text(NEW_VENUE)
    monkeypatch.setattr(venues, "__path__", [*venues.__path__, str(folder)])
    yield folder / "klinemirror.py"
    monkeypatch.undo()
    sys.modules.pop("ohlcv_assets.venues.klinemirror", None)
    if hasattr(venues, "klinemirror"):
        delattr(venues, "klinemirror")
    venues.discover()
    assert "klinemirror" not in venues.PROFILES


def test_a_plain_ccxt_venue_is_one_new_file(simulator, venue_file, tmp_path, warehouse_url):
    path = tmp_path / "universe.yaml"
    path.write_text(new_venue_universe(simulator.url))
    with pytest.raises(UniverseError, match="unknown venue 'klinemirror'"):
        parse_universe(path.read_text(), str(path))

    venues.discover()  # what importing the package does, with the file beside the others
    assert venues.PROFILES["klinemirror"].name == "klinemirror" and "klinemirror" in venues.known_venues()
    universe = parse_universe(path.read_text(), str(path))
    config = universe.exchanges["mirror"]
    assert (config.venue, config.ccxt_id, config.page_limit) == ("klinemirror", "binance", 500)
    with pytest.raises(UniverseError, match="unknown ccxt exchange id 'klinemirror'"):  # a venue's name is not a ccxt class
        parse_universe(path.read_text().replace("venue: klinemirror", "venue: klinemirror, ccxt_id: klinemirror"), str(path))

    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        defs = build_definitions(str(path), warehouse_url)
        result = dg.materialize([defs.get_assets_def(candles_key("1h"))], partition_key=partition_key("mirror.BTC-USDT", PLAIN_DAY),
                                instance=instance, resources=defs.resources)
    assert result.success
    warehouse = Warehouse(warehouse_url)
    try:
        stored = warehouse.read_candles("mirror", "BTC/USDT", "1h", *day_bounds_ms(PLAIN_DAY))
    finally:
        warehouse.dispose()
    assert len(stored) == 24 and stored.equals(simulator_candles(simulator, "BTC/USDT", "1h", PLAIN_DAY, now_ms()))


def test_two_modules_declaring_one_venue_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "more_venues"
    folder.mkdir()
    (folder / "binance_again.py").write_text("from ohlcv_assets.venues.binance import PROFILE\n")
    monkeypatch.setattr(venues, "__path__", [*venues.__path__, str(folder)])
    try:
        with pytest.raises(ImportError, match="'binance' and 'binance_again' both declare the venue 'binance'"):
            venues.discover()
    finally:
        monkeypatch.undo()
        sys.modules.pop("ohlcv_assets.venues.binance_again", None)
        venues.discover()
    assert list(venues.PROFILES) == ["binance", "binanceus", "binanceusdm", "coinbaseexchange", "kraken", "polygon"]


def test_every_source_speaks_the_whole_interface(simulator):
    """``ping`` (the health check's one request) is part of ``CandleSource``, as every method the
    pipeline calls: each registered source class implements all of them."""
    wanted = {name for name, member in vars(CandleSource).items() if inspect.isfunction(member) and not name.startswith("_")}
    assert {"check_symbol", "fetch_page", "first_open_time", "last_candle_end", "ping"} <= wanted
    for kind in SOURCE_CLASSES:
        cls = source_class(kind)
        assert all(inspect.isfunction(getattr(cls, name, None)) for name in wanted), kind
    source = build_source("binance", ExchangeConfig(ccxt_id="binance", api_url=f"{simulator.url}/api/v3", timeout_seconds=2))
    assert source.ping() is None
