"""What a test needs from the machine (a binary, a built page, a folder beside the repository), checked in one way.

Outside CI a missing prerequisite skips the tests that need it, with what to install. In CI (``CI=true``, as
``.ci/run`` is run) it fails them instead: a run that skipped the browser or the Redis-outage tests would be
green without having tested what they test.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """Whether this run is CI's: ``CI=true`` (or ``1``), as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require(present: bool, missing: str) -> None:
    """Go on when ``present``; else skip, or in CI fail, saying ``missing`` (what is missing and how to get it)."""
    if present:
        return
    if in_ci():
        pytest.fail(f"{missing} (CI=true: a missing prerequisite fails the run instead of skipping its tests)",
                    pytrace=False)
    pytest.skip(missing)
