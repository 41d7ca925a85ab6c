"""Fixtures for the operator-facing surface (metrics, logs, the API description, the Heroku files): the HTTP
edge's fixtures (tests/app) and the live stack's (tests/e2e), reused as they are.

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
ROOT = TESTS.parent
# tests/app's conftest imports its helpers as a top-level module, as tests/app's own tests do.
sys.path.insert(0, str(TESTS / "app"))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_edge = _load("ops_edge_conftest", TESTS / "app" / "conftest.py")
_e2e = _load("ops_e2e_conftest", TESTS / "e2e" / "conftest.py")

sim, scenario, config, app, client, jobs = _edge.sim, _edge.scenario, _edge.config, _edge.app, _edge.client, _edge.jobs
stack, baton = _e2e.stack, _e2e.baton  # stack_redis comes from tests/conftest.py
Baton = _e2e.Baton


@pytest.fixture
def root() -> Path:
    """The repository's top folder (Procfile, app.json, gunicorn.conf.py)."""
    return ROOT
