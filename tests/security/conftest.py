"""Fixtures for the security tests: the HTTP edge's (tests/app) and the live stack's (tests/e2e), reused as they are.

Both directories keep their fixtures in a ``conftest.py`` without a package, so they are loaded here
from their files under other module names, and their fixtures re-exported for pytest to find.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent.parent
# tests/app's conftest imports its helpers as a top-level module, as tests/app's own tests do.
sys.path.insert(0, str(TESTS / "app"))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_edge = _load("security_edge_conftest", TESTS / "app" / "conftest.py")
_e2e = _load("security_e2e_conftest", TESTS / "e2e" / "conftest.py")

sim, scenario, config, app, client, jobs = _edge.sim, _edge.scenario, _edge.config, _edge.app, _edge.client, _edge.jobs
stack = _e2e.stack  # stack_redis comes from tests/conftest.py


@pytest.fixture
def live_api(stack):
    """tests/e2e's client of Baton's API, with no settings restored afterwards: the test may stop the stack."""
    return _e2e.Baton(stack)
