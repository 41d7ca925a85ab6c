"""The suite's randomness can be replayed: Python's ``random`` seeded per test, Hypothesis printing its failures."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import settings as hypothesis_settings
from seeding import RUN_SEED, seed_random_for

ROOT = Path(__file__).resolve().parents[1]
THIS_TEST = "tests/test_seeding.py::test_each_test_starts_from_the_run_seed_and_its_own_id"


def test_each_test_starts_from_the_run_seed_and_its_own_id(request):
    """Before a test, ``random`` is seeded from the run's seed and the test's id, whatever ran before it."""
    drawn = random.random()
    print(f"drew {drawn!r}")

    seed_random_for(request.config.stash[RUN_SEED], request.node.nodeid)
    assert random.random() == drawn


def run_this_test(seed: str) -> str:
    """The output of this file's first test, run alone in a new pytest with BATON_TEST_SEED=``seed``."""
    env = {**os.environ, "BATON_TEST_SEED": seed}
    result = subprocess.run([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-p", "no:randomly",
                             THIS_TEST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def draw_in(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "drew " in line]
    return line[line.index("drew "):]


def test_a_run_is_replayed_with_its_seed():
    """BATON_TEST_SEED replays a run's draws and the header names it; another seed draws otherwise."""
    first = run_this_test("20261203")

    assert "replay with BATON_TEST_SEED=20261203" in first
    assert draw_in(run_this_test("20261203")) == draw_in(first)
    assert draw_in(run_this_test("20261204")) != draw_in(first)


def test_hypothesis_prints_what_replays_a_failure():
    """Whichever profile is loaded, a Hypothesis failure prints its @reproduce_failure blob."""
    assert hypothesis_settings.default.print_blob
