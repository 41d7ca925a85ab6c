"""Helpers for the admin page's tests (tests/browser): its tokens, Chromium's place and arguments, forms' CSRF."""

from __future__ import annotations

import os
import re
import shutil

ADMIN_TOKEN = "browser-admin-token-0123456789abcdef01234567"
SECRET_KEY = "browser-secret-key-0123456789"
# What this machine's Chromium needs: no sandbox as root, and no calls home (the network is closed).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """Where Chromium should be: ``$CHROMIUM``, else Debian's ``chromium`` on the PATH or in /usr/bin."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)
