"""The pause between two attempts of a request, for every caller that retries (REST sources, archive downloads)."""

from __future__ import annotations

import random

BACKOFF_CAP_SECONDS = 30.0


def backoff_seconds(attempt: int, base: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [0.5, 1.5] x base * 2**attempt, capped."""
    return min(BACKOFF_CAP_SECONDS, base * 2**attempt) * rng.uniform(0.5, 1.5)
