"""Derived intervals in the universe: declared per instrument, validated at load with clear errors."""

import pytest

from ohlcv_assets.core.universe import UniverseError, parse_universe
from ohlcv_assets.defs.partitions import instrument_partition_sets

VENUES = """
exchanges:
  binance: {ccxt_id: binance}
  coinbase: {venue: coinbaseexchange}
  polygon: {venue: polygon, api_key_env: DERIVED_TEST_POLYGON_KEY}
instruments:
"""


def universe(*instruments: str):
    return parse_universe(VENUES + "".join(f"  - {i}\n" for i in instruments), "u.yaml")


def test_derived_intervals_are_their_own_series_beside_the_fetched_ones(monkeypatch):
    monkeypatch.setenv("DERIVED_TEST_POLYGON_KEY", "k")
    u = universe("{exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h], derived: {1h: 1m, 4h: 1m}, start: 2026-10-01}",
                 "{exchange: coinbase, symbol: BTC/USD, intervals: [5m], derived: {4h: 5m, 1d: 5m}, start: 2026-10-02}",
                 "{exchange: polygon, symbol: AAPL, intervals: [1m, 1d], derived: {1d: 1m}, start: 2026-10-01}")
    assert u.intervals == ["1m", "5m", "1h", "1d"]  # what is fetched
    assert u.derived_series == [
        ("1h", "1m"), ("4h", "1m"), ("4h", "5m"), ("1d", "1m"), ("1d", "5m")]
    assert [i.key for i in u.instruments_deriving("4h", "1m")] == ["binance.BTC-USDT"]
    assert str(u.derived_start_date("4h", "5m")) == "2026-10-02"
    sets = instrument_partition_sets(u)
    assert sets["instruments_4h_from_5m"] == ["coinbase.BTC-USD"] and sets["instruments_1d_from_1m"] == ["polygon.AAPL"]
    assert sets["instruments_1d"] == ["polygon.AAPL"]  # the vendor's daily bars stay a series of their own


@pytest.mark.parametrize("entry, message", [
    ("{exchange: binance, symbol: BTC/USDT, intervals: [5m], derived: {4h: 1m}, start: 2026-10-01}",
     "4h is derived from 1m, which is not stored: add 1m to intervals"),
    ("{exchange: binance, symbol: BTC/USDT, intervals: [15m], derived: {20m: 15m}, start: 2026-10-01}",
     "20m cannot be derived from 15m: the source must be finer and divide it"),
    ("{exchange: binance, symbol: BTC/USDT, intervals: [1h], derived: {1h: 1h}, start: 2026-10-01}",
     "1h cannot be derived from 1h"),
    ("{exchange: binance, symbol: BTC/USDT, intervals: [1m], derived: {7m: 1m}, start: 2026-10-01}",
     "interval '7m' does not divide a day"),
    ("{exchange: coinbase, symbol: BTC/USD, intervals: [1m, 4h], start: 2026-10-01}",
     "interval '4h' is not offered by coinbaseexchange (offers: 1m, 5m, 15m, 1h, 6h, 1d); derive it in the warehouse "
     "from a finer stored interval: derived: {4h: 1m}"),
    ("{exchange: coinbase, symbol: BTC/USD, intervals: [2h], start: 2026-10-01}",
     "interval '2h' is not offered by coinbaseexchange (offers: 1m, 5m, 15m, 1h, 6h, 1d); derive it in the warehouse "
     "from a finer stored interval: derived: {2h: 1m}, with 1m in intervals"),
])
def test_bad_derived_intervals_are_clear_errors(entry, message):
    with pytest.raises(UniverseError) as err:
        universe(entry)
    assert message in str(err.value)
