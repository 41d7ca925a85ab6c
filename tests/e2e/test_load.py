"""Smaller versions of scripts/load_transfers.py: concurrent scripted transfers, duplicated events, Twilio faults."""

import shutil

import pytest

from baton.operator.devstack import RedisServer
from baton.operator.loadtest import run_load

pytestmark = pytest.mark.e2e


@pytest.fixture
def load(request):
    """Run a load on a Redis of its own (a private server when one can be started)."""
    def run(transfers: int, **options):
        server = RedisServer().start() if shutil.which("redis-server") else None
        try:
            return run_load(transfers, server.url if server else request.config.getoption("--redis-url"), **options)
        finally:
            if server:
                server.stop()
    return run


@pytest.mark.timeout(300)
def test_concurrent_transfers_end_as_scripted(load):
    """30 concurrent transfers with rejections, timeouts and every webhook twice: all end as scripted, no duplicates."""
    result = load(30, seed=3, timeout=120)
    assert result.ok, result.report()
    assert sum(result.outcomes.values()) == 30
    assert {script for script, _ in result.outcomes} == {"accept", "reject", "ignore", "unanswerable"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("profile", ["documented", "alternate"])
def test_transfers_end_as_scripted_with_a_fifth_of_twilio_requests_failing(load, profile):
    """With 20 % of Twilio requests failing (429, 500, 503, dropped), every transfer still ends as scripted,
    under either reading of Twilio's ambiguous behaviours."""
    result = load(30, seed=5, fault_rate=0.2, timeout=240, profile=profile)
    assert result.ok, result.report()
    assert result.twilio_faults > 0
