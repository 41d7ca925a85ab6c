"""The run's seed: one per run, printed in the report header, given back with BATON_TEST_SEED to replay the run.

Before each test Python's ``random`` is seeded from the run's seed and the test's id, so a test draws the same
numbers whatever ran before it (the engine's retry jitter, and whatever else draws from ``random``). When
pytest-randomly orders the run (the dev extra installs it; ``-p no:randomly`` turns it off), it orders it
by the same seed, so BATON_TEST_SEED replays the order too.
"""

from __future__ import annotations

import os
import random

import pytest

SEED_VARIABLE = "BATON_TEST_SEED"
RUN_SEED = pytest.StashKey[int]()


def run_seed(config: pytest.Config) -> int:
    """$BATON_TEST_SEED when given, else pytest-randomly's seed when it orders the run, else a new seed.

    Called after pytest-randomly has resolved its seed: a given seed replaces it. Its own re-seeding of
    ``random`` at each phase of a test is turned off: ``random`` is seeded once per test, here.
    """
    given = os.environ.get(SEED_VARIABLE, "").strip()
    if given and not given.isdigit():
        raise pytest.UsageError(f"{SEED_VARIABLE} must be a whole number, the seed a report header printed; "
                                f"not {given!r}")
    if config.pluginmanager.hasplugin("randomly"):
        if given:
            config.option.randomly_seed = int(given)
        config.option.randomly_reset_seed = False
        return int(config.option.randomly_seed)
    return int(given) if given else random.SystemRandom().randrange(2**32)


def seed_random_for(seed: int, nodeid: str) -> None:
    """Seed ``random`` for the test ``nodeid`` of the run seeded with ``seed``."""
    random.seed(f"{seed}:{nodeid}")
