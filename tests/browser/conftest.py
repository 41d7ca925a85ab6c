"""Fixtures for the admin page: the app from its factory for page tests, and for the browser test the
live stack (gunicorn, Celery worker, simulator) with Debian's Chromium driven by Playwright. ``config``,
``app``, ``client`` and ``stack`` override the suite's (tests/fixtures) with the admin page's tokens.

Chromium comes from Debian's ``chromium`` package (``make test`` installs it as root when it is
missing); Playwright for Python brings only its driver and launches that binary. Playwright's own
browser download is never used: it cannot work on the machines this project runs on.
"""

from __future__ import annotations

import os

import pytest
from support.admin import ADMIN_TOKEN, CHROMIUM_ARGS, SECRET_KEY, chromium_path, csrf_of
from support.prerequisites import require
from support.stack import Baton

from app import create_app
from baton.infrastructure.config import Config
from baton.operator.devstack import DevStack

# Slower than the other end-to-end tests' 0.05, so a transfer lasts long enough to watch it live.
TIME_SCALE = 0.2


# Page tests: the Flask app, no browser.


@pytest.fixture
def config(redis_url) -> Config:
    # The admin page asks Twilio only for names, which the tests that show some put in the cache first.
    return Config(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="auth-token",
                  twilio_workspace_sid="WS" + "0" * 32, transfer_workflow_sid="WW" + "0" * 32,
                  public_base_url="http://baton.test", redis_url=redis_url, twilio_api_base="http://127.0.0.1:9",
                  admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY)


@pytest.fixture
def app(config):
    return create_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def signed_in(client):
    """The test client, signed in to the admin page."""
    page = client.get("/admin/sign-in")
    response = client.post("/admin/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 302, response.text
    return client


# The browser test: the live stack and Chromium.


@pytest.fixture(scope="module")
def stack(stack_redis):
    devstack = DevStack(stack_redis, time_scale=TIME_SCALE,
                        extra_env={"ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": SECRET_KEY})
    devstack.start()
    yield devstack
    devstack.stop()


@pytest.fixture(scope="module")
def chromium():
    executable = chromium_path()
    require(os.access(executable, os.X_OK),
            f"no Chromium at {executable}: Debian's chromium package is not installed and could not be "
            "(`make test` installs it with apt-get when run as root); or set CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives the browser a new, empty profile (--user-data-dir) of its own.
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def api(stack):
    """The agent and admin API, as a Flex UI plugin or an operator calls it; the settings come back afterwards."""
    client = Baton(stack, admin_token=ADMIN_TOKEN)
    defaults = client.settings()
    yield client
    client.settings(**defaults)
