"""simulator.core: the webhook dispatcher's jitter comes from a generator of its own, seeded."""

from __future__ import annotations

import random

import pytest

from simulator import core
from simulator.core import WebhookDispatcher


def jitter_of(seed: int, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays one delivery thread sleeps before three webhooks (dropped: nothing is sent)."""
    slept: list[float] = []
    monkeypatch.setattr(core.time, "sleep", slept.append)
    dispatcher = WebhookDispatcher("test-token", threads=1, jitter_seed=seed)
    dispatcher.drop = lambda url, params: True
    dispatcher.jitter_s = 2.0
    try:
        for n in range(3):
            dispatcher.send("http://127.0.0.1:9/hook", {"n": n})
        assert dispatcher.wait_idle()
    finally:
        dispatcher.stop()
    return slept


def test_the_same_jitter_seed_draws_the_same_delays(monkeypatch):
    """Two dispatchers seeded alike delay their webhooks alike, within jitter_s; another seed draws others."""
    first = jitter_of(7, monkeypatch)

    assert jitter_of(7, monkeypatch) == first
    assert len(first) == 3 and all(0 <= delay <= 2.0 for delay in first)
    assert jitter_of(8, monkeypatch) != first


def test_the_jitter_leaves_pythons_random_alone(monkeypatch):
    """Drawing the delays does not consume the global generator that the code under test may seed and use."""
    random.seed(1)
    expected = random.random()
    random.seed(1)
    jitter_of(7, monkeypatch)

    assert random.random() == expected
