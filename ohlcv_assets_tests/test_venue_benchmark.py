"""The per-venue benchmark the README shows runs as written (on a shorter range) and prints a row
per venue with the numbers it claims to measure."""

import subprocess
import sys

from ohlcv_assets_tests.conftest import REPO


def test_the_venue_benchmark_prints_a_row_per_venue(postgres_server_url):
    result = subprocess.run([sys.executable, "venues.py", "--days", "3", "--postgres", postgres_server_url],
                            cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| venue")}
    assert set(rows) == {"binance", "kraken", "coinbase", "polygon"}
    assert rows["binance"][2] == f"{3 * 1440:,}" and rows["binance"][8] == "1.00"
    asked, fetched, beyond = (int(n) for n in rows["kraken"][1].split(" / "))
    assert asked == fetched + beyond == 3 and beyond >= 2  # only its latest 720 candles are served
    assert int(rows["coinbase"][4]) >= 3 * 1440 // 300  # 300 candles a request
    assert all(float(rows[venue][7].replace(",", "")) > 0 for venue in ("binance", "coinbase"))
