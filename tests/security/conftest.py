"""Fixtures for the security tests, beside the HTTP edge's and the live stack's (tests/fixtures)."""

from __future__ import annotations

import pytest
from support.stack import Baton


@pytest.fixture
def live_api(stack):
    """The live stack's client of Baton's API, with no settings restored afterwards: the test may stop the stack."""
    return Baton(stack)
