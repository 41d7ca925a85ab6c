"""Fixtures for the HTTP edge: the app from its factory, against a served simulator and real Redis.

The simulator and its default contact center are shared by every test here (no test changes
them in a way another one sees); Redis is emptied before each test.
"""

from __future__ import annotations

import pytest
import redis
from edge_support import ADMIN_TOKEN, PUBLIC_BASE_URL, queued_jobs

from app import create_app
from baton.infrastructure.config import Config
from simulator import Simulator
from simulator.scenario import build_default_scenario


@pytest.fixture(scope="session")
def sim():
    with Simulator(time_scale=0.05) as simulator:
        simulator.serve()
        yield simulator


@pytest.fixture(scope="session")
def scenario(sim):
    return build_default_scenario(sim)


@pytest.fixture
def config(sim, scenario, redis_url) -> Config:
    return Config(
        twilio_account_sid=scenario.account_sid,
        twilio_auth_token=scenario.auth_token,
        twilio_workspace_sid=scenario.workspace_sid,
        transfer_workflow_sid=scenario.transfer_workflow_sid,
        public_base_url=PUBLIC_BASE_URL,
        redis_url=redis_url,
        twilio_api_base=sim.url,
        admin_token=ADMIN_TOKEN,
        secret_key="secret-key-for-the-tests",
    )


@pytest.fixture
def app(config):
    return create_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def jobs(redis_url):
    """A function listing the jobs enqueued so far."""
    broker = redis.Redis.from_url(redis_url)
    return lambda: queued_jobs(broker)
