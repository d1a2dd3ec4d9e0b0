"""The archive benchmark the README shows runs as written (one year, the quick variants) and prints
the rows it claims to measure, each variant having written the whole year."""

import subprocess
import sys

from ohlcv_assets_tests.conftest import REPO


def test_the_archive_benchmark_prints_its_rows(postgres_server_url):
    result = subprocess.run([sys.executable, "archives.py", "--years", "1", "--variants", "archive,rest,raw_candles",
                             "--postgres", postgres_server_url],
                            cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {cells[1]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in result.stdout.splitlines()
                                          if line.startswith("| 1 |"))}
    assert set(rows) == {"archive", "rest", "raw_candles"}
    assert all(cells[3] == "525,600" for cells in rows.values())  # the year of 1m candles, written by each
    assert rows["raw_candles"][6] == "1.00×" and rows["archive"][7].endswith("faster")
