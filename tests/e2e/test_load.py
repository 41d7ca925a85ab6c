"""A smaller version of scripts/load_transfers.py: concurrent scripted transfers, duplicated events."""

import shutil

import pytest

from baton.devstack import RedisServer
from baton.loadtest import run_load

pytestmark = pytest.mark.e2e


def test_concurrent_transfers_end_as_scripted(request):
    """40 concurrent transfers with rejections, timeouts and every webhook twice: all end as scripted, no duplicates."""
    server = RedisServer().start() if shutil.which("redis-server") else None
    try:
        url = server.url if server else request.config.getoption("--redis-url")
        result = run_load(40, url, seed=3, timeout=120)
    finally:
        if server:
            server.stop()
    assert result.ok, result.report()
    assert sum(result.outcomes.values()) == 40
    assert {script for script, _ in result.outcomes} == {"accept", "reject", "ignore", "unanswerable"}
