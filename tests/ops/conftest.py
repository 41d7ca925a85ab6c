"""Fixtures for the operator-facing surface (metrics, logs, the API description, the Heroku files): the HTTP
edge's fixtures (tests/app) and the live stack's (tests/e2e), reused as they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from borrowed_fixtures import TESTS, conftest_of

ROOT = TESTS.parent

_edge = conftest_of("app", "ops_edge_conftest")
_e2e = conftest_of("e2e", "ops_e2e_conftest")

sim, scenario, config, app, client, jobs = _edge.sim, _edge.scenario, _edge.config, _edge.app, _edge.client, _edge.jobs
stack, baton = _e2e.stack, _e2e.baton  # stack_redis comes from tests/conftest.py
Baton = _e2e.Baton


@pytest.fixture
def root() -> Path:
    """The repository's top folder (Procfile, app.json, gunicorn.conf.py)."""
    return ROOT
