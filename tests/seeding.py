"""The run's seed for Python's ``random``: one per run, printed in the report header, given back with BATON_TEST_SEED.

Before each test ``random`` is seeded from the run's seed and the test's id, so a test draws the same numbers
whatever ran before it (the engine's retry jitter, and whatever else draws from ``random``).
"""

from __future__ import annotations

import os
import random

import pytest

SEED_VARIABLE = "BATON_TEST_SEED"
RUN_SEED = pytest.StashKey[int]()


def run_seed() -> int:
    """$BATON_TEST_SEED when given (a replay), else a new seed."""
    given = os.environ.get(SEED_VARIABLE, "").strip()
    if given and not given.isdigit():
        raise pytest.UsageError(f"{SEED_VARIABLE} must be a whole number, the seed a report header printed; "
                                f"not {given!r}")
    return int(given) if given else random.SystemRandom().randrange(2**32)


def seed_random_for(seed: int, nodeid: str) -> None:
    """Seed ``random`` for the test ``nodeid`` of the run seeded with ``seed``."""
    random.seed(f"{seed}:{nodeid}")
