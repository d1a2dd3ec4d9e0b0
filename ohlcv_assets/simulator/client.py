"""Reading a running simulator from outside: what it served (``/sim/stats``), for the tests and the
benchmarks that count a venue's answers."""

from __future__ import annotations

import json
import urllib.request


def read_stats(url: str, timeout: float = 10) -> dict:
    """The counters of the simulator at ``url`` (its base URL, e.g. ``http://127.0.0.1:8765``)."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/sim/stats", timeout=timeout) as response:
        return json.loads(response.read())
