"""The archive readers, routing and reconciliation rule as plain functions, and the simulator's
archive files read by them over HTTP."""

import datetime as dt
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from ohlcv_assets.archive import ArchiveUnavailable, load_verified
from ohlcv_assets.archive.binance_vision import BinanceVisionArchive, parse_klines_csv
from ohlcv_assets.archive.download import HOST_FAILURE_FILES, Downloader
from ohlcv_assets.archive.kraken_ohlcvt import pair_file_name, read_ohlcvt
from ohlcv_assets.archive.routing import route_days
from ohlcv_assets.ingest.archive_path import reconcile
from ohlcv_assets.candle_frame import rows_to_frame, widen
from ohlcv_assets.ingest.report import DayTodo
from ohlcv_assets.core.intervals import day_bounds_ms
from ohlcv_assets.core.universe import UniverseError, parse_universe

SPOT_MS = b"1735603200000,93000.01000000,93100.00000000,92900.00000000,93050.50000000,1.50000000,1735603259999,139575.75,42,0.5,46500.1,0\n"
SPOT_US = b"1735689600000000,93050.50000000,93060.00000000,93000.00000000,93010.00000000,2.00000000,1735689659999999,186020.0,7,1.0,93010.0,0\n"
HEADER = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"


def test_microsecond_and_millisecond_rows_and_a_header_parse_alike():
    frame = parse_klines_csv(HEADER + SPOT_MS + SPOT_US)
    assert frame["open_time"].tolist() == [1735603200000, 1735689600000]
    assert frame["open"].tolist() == [93000.01, 93050.5] and frame["trades"].tolist() == [42, 7]
    assert frame["taker_buy_quote_volume"].tolist() == [46500.1, 93010.0] and frame["vwap"].isna().all()
    assert parse_klines_csv(SPOT_MS + SPOT_US).equals(frame)


def test_routing_whole_published_months_then_daily_files_then_rest():
    today = dt.date(2026, 3, 2)
    days = [dt.date(2026, 1, 30) + dt.timedelta(days=i) for i in range(32)]  # Jan 30 .. Mar 2
    route = route_days(days + [dt.date(2025, 12, d) for d in range(1, 32)], today, daily_lag_days=1, monthly_lag_days=3)
    assert [m for m, _ in route.months] == ["2025-12"]  # February ended 1 day ago: its monthly file is not out
    assert route.daily == [dt.date(2026, 1, 30), dt.date(2026, 1, 31)] + [dt.date(2026, 2, d) for d in range(1, 29)] + [dt.date(2026, 3, 1)]
    assert route.rest == [dt.date(2026, 3, 2)]


def _frame(volumes, start=0):
    n = len(volumes)
    core = np.column_stack([start + np.arange(n) * 60_000, np.full(n, 10.0), np.full(n, 11.0), np.full(n, 9.0), np.full(n, 10.5),
                            np.asarray(volumes, float)])
    return rows_to_frame(widen(core))


@pytest.mark.parametrize("age_days,kept", [(30, "archive"), (2, "stored")])
def test_a_disagreement_is_recorded_and_resolved_by_the_age_rule(age_days, kept):
    today = dt.date(2026, 3, 10)
    day = today - dt.timedelta(days=age_days)
    start = day_bounds_ms(day)[0]
    stored = _frame([1, 2, 3, 4], start).assign(vwap=[10.1, 10.2, 10.3, 10.4])
    incoming = _frame([1, 2, 3.3, 4, 5], start)  # one candle differs, one is new; the file has no vwap
    todo = [DayTodo(day, start, start + 86_400_000, 1440)]
    written, [found] = reconcile(stored, incoming, todo, "f.zip", {}, today, prefer_archive_after_days=7)
    assert (found.candles, found.kept, found.first_open_time) == (1, kept, start + 120_000)
    assert round(found.max_diff_pct, 6) == 10.0
    assert len(written) == 5  # a candle whose stored values are kept is still written (unchanged): it is present
    assert written["volume"].tolist() == ([1, 2, 3.3, 4, 5] if kept == "archive" else [1, 2, 3, 4, 5])
    assert written["vwap"].fillna(-1).tolist() == [10.1, 10.2, 10.3, 10.4, -1]  # the file's lack filled from the stored


def test_kraken_file_names_and_a_streamed_member_cut_to_the_asked_days(tmp_path):
    assert pair_file_name("BTC/USD", "1h") == "XBTUSD_60.csv" and pair_file_name("ETH/EUR", "1m") == "ETHEUR_1.csv"
    rows = "".join(f"{1735689600 + 3600 * i},1.0,2.0,0.5,1.5,3.25,{i + 1}\n" for i in range(24 * 5) if i % 7)  # some hours absent
    path = tmp_path / "Kraken_OHLCVT.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("TimeAndSales/ignored.csv", "x")
        zipped.writestr("XBTUSD_60.csv", rows)
    lo, hi = day_bounds_ms(dt.date(2025, 1, 2))[0], day_bounds_ms(dt.date(2025, 1, 3))[1]
    frame, covers = read_ohlcvt(str(path), "XBTUSD_60.csv", lo, hi)
    assert covers == (lo, hi) and frame["open_time"].between(lo, hi - 1).all()
    assert len(frame) == sum(1 for i in range(24, 72) if i % 7) and frame["trades"].iloc[0] == 25.0 and frame["vwap"].isna().all()
    assert read_ohlcvt(str(path), "ETHUSD_60.csv", lo, hi)[1] is None
    (tmp_path / "bad.zip").write_bytes(path.read_bytes()[:40])
    with pytest.raises(ArchiveUnavailable, match="unreadable"):
        read_ohlcvt(str(tmp_path / "bad.zip"), "XBTUSD_60.csv", lo, hi)


@pytest.fixture(scope="module")
def futures_sim(simulators):
    return simulators({"symbols": [{"base": "BTC", "quote": "USDT", "listed": "2021-06-01"}]})


def _archive(url: str, market: str) -> BinanceVisionArchive:
    """The reader of one archive tree. A universe refuses a futures tree for the spot venue (it would
    store futures candles under spot symbols), so the tree is set on the parsed entry: only the
    reader's handling of that tree's files is under test here."""
    universe = parse_universe(f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "{url}/api/v3", archive: {{url: "{url}/archive/binance"}}}}
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1h], start: 2021-06-01}}
""", "u")
    config = universe.exchanges["binance"]
    return BinanceVisionArchive(config.model_copy(update={"archive": config.archive.model_copy(update={"market": market})}))


@pytest.mark.parametrize("market,day,header", [("futures/um", dt.date(2021, 12, 31), False), ("futures/um", dt.date(2022, 1, 1), True),
                                               ("spot", dt.date(2024, 12, 31), False), ("spot", dt.date(2025, 1, 1), False)])
def test_simulated_files_with_and_without_header_read_as_the_market(futures_sim, market, day, header):
    archive = _archive(futures_sim.url, market)
    [file] = archive.plan("BTC/USDT", "1h", [day], dt.date(2026, 1, 1))
    data, _ = archive.read("BTC/USDT", "1h", file)
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        text = zipped.read(zipped.namelist()[0])
    assert text.startswith(b"open_time") == header
    assert (len(text.split(b",", 1)[0]) == 16) == (market == "spot" and day.year >= 2025)  # microseconds
    loaded = load_verified(archive, "BTC/USDT", "1h", file, archive.published_sha256(file), attempts=1)
    lo, hi = day_bounds_ms(day)
    truth = pd.DataFrame(futures_sim.market.candles(futures_sim.config.symbols["BTCUSDT"], 3_600_000, lo, hi, hi + 1).as_floats())
    assert loaded.candles[truth.columns].equals(truth)


def test_a_file_that_never_matches_its_checksum_is_never_loaded(futures_sim):
    archive = _archive(futures_sim.url, "spot")
    futures_sim.reconfigure({"archive_faults": [{"kind": "bad_checksum", "file": "2024-06-03"}]})
    try:
        [file] = archive.plan("BTC/USDT", "1h", [dt.date(2024, 6, 3)], dt.date(2026, 1, 1))
        with pytest.raises(ArchiveUnavailable, match="checksum_mismatch"):
            load_verified(archive, "BTC/USDT", "1h", file, archive.published_sha256(file), attempts=3)
        assert archive.stats.checksum_failures == 3 and archive.stats.files_downloaded == 3
    finally:
        futures_sim.reconfigure({"archive_faults": []})


def test_a_file_that_times_out_is_its_own_failure_and_only_files_failing_in_a_row_skip_the_host(futures_sim):
    """Daily files over HTTP, some answered only after the client's timeout. Each is that file's
    failure; a file served in between ends the run of failures; HOST_FAILURE_FILES failing in a row
    skip the host for the rest of the downloader's run, and the next file is not asked at all."""
    assert HOST_FAILURE_FILES == 3
    archive = _archive(futures_sim.url, "spot")
    downloader = Downloader(0.5, None, archive.stats, attempts=2, retry_base_seconds=0.01)
    days = [dt.date(2024, 6, d) for d in range(3, 10)]
    slow = [dt.date(2024, 6, d) for d in (3, 4, 6, 7, 8)]  # the 5th is served; the 9th comes after three failing in a row
    futures_sim.reconfigure({"reset_stats": True, "archive_faults": [
        {"kind": "slow", "file": f"BTCUSDT-1h-{d}.zip", "seconds": 1.5} for d in slow]})
    try:
        outcome = {}
        for day in days:
            [file] = archive.plan("BTC/USDT", "1h", [day], dt.date(2026, 1, 1))
            try:
                downloader.get(file.location)
                outcome[day] = "served"
            except ArchiveUnavailable as err:
                outcome[day] = f"{err.reason}: {err.detail}"
        asked = futures_sim.stats["archive.requests"]
    finally:
        futures_sim.reconfigure({"archive_faults": []})
    host = futures_sim.url.split("//", 1)[1]
    assert outcome[dt.date(2024, 6, 5)] == "served"
    for day in slow:
        assert outcome[day].startswith("download_failed: ") and outcome[day].endswith("ReadTimeout after 2 attempts" + (
            f"; {host} is not asked again in this run" if day == dt.date(2024, 6, 8) else "")), outcome[day]
    assert outcome[dt.date(2024, 6, 9)].endswith(f"not tried: {host} is not asked again in this run (3 files in a row failed, "
                                                 "the last with ReadTimeout after 2 attempts)"), outcome[dt.date(2024, 6, 9)]
    assert asked == 2 * len(slow) + 1  # two attempts per slow file, one for the served one, none for the last


def test_an_archive_on_a_venue_without_one_is_a_load_time_error():
    with pytest.raises(UniverseError, match="coinbase.*no bulk archive"):
        parse_universe("""
exchanges:
  coinbase: {ccxt_id: coinbaseexchange, archive: {url: "http://127.0.0.1:1/x"}}
instruments:
  - {exchange: coinbase, symbol: BTC/USD, intervals: [1h], start: 2025-01-01}
""", "u")
