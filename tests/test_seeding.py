"""The suite's randomness can be replayed: Python's ``random`` seeded per test, Hypothesis printing its failures."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import settings as hypothesis_settings
from support.prerequisites import require
from support.seeding import RUN_SEED, seed_random_for

ROOT = Path(__file__).resolve().parents[1]
THIS_TEST = "tests/test_seeding.py::test_each_test_starts_from_the_run_seed_and_its_own_id"


def test_each_test_starts_from_the_run_seed_and_its_own_id(request):
    """Before a test, ``random`` is seeded from the run's seed and the test's id, whatever ran before it."""
    drawn = random.random()
    print(f"drew {drawn!r}")

    seed_random_for(request.config.stash[RUN_SEED], request.node.nodeid)
    assert random.random() == drawn


def run_this_test(seed: str, *plugin: str, ci: str = "") -> str:
    """The output of this file's first test, run alone in a new pytest with BATON_TEST_SEED=``seed`` and CI=``ci``,
    in file order unless ``plugin`` says otherwise."""
    env = {**os.environ, "BATON_TEST_SEED": seed, "CI": ci}
    env.pop("HYPOTHESIS_PROFILE", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                             *(plugin or ("-p", "no:randomly")), THIS_TEST],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
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


def test_the_random_order_follows_the_same_seed_and_leaves_the_draws_alone():
    """With pytest-randomly ordering the run, BATON_TEST_SEED is its seed too, and a test draws what it draws in
    file order: pytest-randomly's own re-seeding at each phase is off."""
    require(importlib.util.find_spec("pytest_randomly") is not None,
            "pytest-randomly is not installed: pip install -e '.[dev]'")
    ordered = run_this_test("20261203", "-p", "randomly")

    assert "Using --randomly-seed=20261203" in ordered
    assert draw_in(ordered) == draw_in(run_this_test("20261203"))


def test_hypothesis_prints_what_replays_a_failure():
    """Whichever profile is loaded, a Hypothesis failure prints its @reproduce_failure blob."""
    assert hypothesis_settings.default.print_blob


def test_hypothesis_is_derandomized_in_ci():
    """In CI Hypothesis runs the "ci" profile (examples that follow from each test), elsewhere "dev"."""
    assert "hypothesis: profile 'ci' (HYPOTHESIS_PROFILE)" in run_this_test("1", ci="true")
    assert "hypothesis: profile 'dev' (HYPOTHESIS_PROFILE)" in run_this_test("1")
    assert hypothesis_settings.get_profile("ci").derandomize and not hypothesis_settings.get_profile("dev").derandomize
