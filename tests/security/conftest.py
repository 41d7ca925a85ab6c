"""Fixtures for the security tests: the HTTP edge's (tests/app) and the live stack's (tests/e2e), reused as they are."""

from __future__ import annotations

import pytest
from borrowed_fixtures import conftest_of

_edge = conftest_of("app", "security_edge_conftest")
_e2e = conftest_of("e2e", "security_e2e_conftest")

sim, scenario, config, app, client, jobs = _edge.sim, _edge.scenario, _edge.config, _edge.app, _edge.client, _edge.jobs
stack = _e2e.stack  # stack_redis comes from tests/conftest.py


@pytest.fixture
def live_api(stack):
    """tests/e2e's client of Baton's API, with no settings restored afterwards: the test may stop the stack."""
    return _e2e.Baton(stack)
