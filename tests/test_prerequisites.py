"""A missing prerequisite skips its tests on a developer's machine and fails them in CI; so does ``make browser``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.prerequisites import require

ROOT = Path(__file__).resolve().parents[1]
MISSING = "no Chromium at /nowhere/chromium: apt-get install -y chromium"


def test_a_present_prerequisite_lets_the_test_run(monkeypatch):
    """What is there is no reason to skip or fail, in CI or not."""
    monkeypatch.setenv("CI", "true")
    require(True, MISSING)


def test_a_missing_prerequisite_skips_outside_ci(monkeypatch):
    """Without CI=true, a missing prerequisite skips the test, saying what to install."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        require(False, MISSING)


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_prerequisite_fails_in_ci(monkeypatch, ci):
    """With CI=true, a missing prerequisite fails the test, saying what to install: CI cannot pass without it."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"no Chromium at /nowhere/chromium: apt-get install -y chromium "
                                                    r"\(CI=true: a missing prerequisite fails the run"):
        require(False, MISSING)


def make_browser(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """``make browser`` for a Chromium that is not there, on a machine where it cannot be installed: a PATH
    without ``id`` or ``apt-get``, so the target can neither see root nor reach Debian's packages."""
    make = shutil.which("make")
    require(make is not None, "make is not installed: apt-get install -y make")
    variables = ["CHROMIUM=/nowhere/chromium"] + ([f"CI={ci}"] if ci is not None else [])
    return subprocess.run([make, "--no-print-directory", "-C", str(ROOT), "browser", *variables],
                          env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)


def test_make_browser_fails_in_ci_when_chromium_cannot_be_installed(tmp_path):
    """In CI, ``make browser`` exits non-zero when Chromium is missing and cannot be installed, saying how to."""
    result = make_browser(tmp_path, ci="true")

    assert result.returncode != 0, result.stdout + result.stderr
    assert "/nowhere/chromium is missing and could not be installed" in result.stderr
    assert "apt-get install -y chromium" in result.stderr


def test_make_browser_only_warns_outside_ci(tmp_path):
    """Outside CI the same missing Chromium is a warning: the browser tests will skip themselves."""
    result = make_browser(tmp_path, ci=None)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "the browser tests will be skipped" in result.stdout
