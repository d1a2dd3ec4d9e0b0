"""The today-run benchmark the README shows runs as written (on a few instruments) and prints a row per
refresh, the Dagster run beside the pipeline alone."""

import subprocess
import sys

from ohlcv_assets_tests.conftest import REPO


def test_the_today_run_benchmark_prints_a_row_per_refresh(postgres_server_url):
    result = subprocess.run([sys.executable, "today_run.py", "--instruments", "3", "--refreshes", "2", "--postgres", postgres_server_url],
                            cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in result.stdout.splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]
    for _, pipeline, per_instrument, dagster, _, ratio in rows:
        assert float(pipeline) > 0 and int(per_instrument) > 0 and float(dagster) > 0
        assert ratio.endswith("×") and float(ratio[:-1]) > 0
