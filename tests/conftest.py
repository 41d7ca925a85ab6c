"""Fixtures shared by the whole suite: real Redis, isolated per test; randomness that a failure can replay."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from support.prerequisites import in_ci
from support.seeding import RUN_SEED, SEED_VARIABLE, run_seed, seed_random_for

from baton.infrastructure.store import Store, connect_redis
from baton.operator.devstack import RedisServer

# The fixtures several folders use: the HTTP edge's app against a served simulator, and the live stack. pytest
# takes this list only from the root conftest.py; a folder that needs other values overrides a fixture by name.
pytest_plugins = ["fixtures.edge", "fixtures.stack"]

# The suite owns one Redis database and empties it before each test that uses it.
TEST_DB = 15
# Without a private redis-server, the live stacks' database, apart from TEST_DB: emptying a database
# under a running worker would also drop Celery's queue bindings.
STACK_DB = 14

# Hypothesis prints the blob that replays a failure (@reproduce_failure) wherever it runs; in CI it also
# derandomizes (each test's examples follow from the test itself), so a red CI run is the same run on a
# developer's machine with HYPOTHESIS_PROFILE=ci.
# Each setting is given: a profile inherits the default in force when it is registered.
hypothesis_settings.register_profile("dev", print_blob=True, derandomize=False)
hypothesis_settings.register_profile("ci", print_blob=True, derandomize=True)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev")
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_addoption(parser):
    parser.addoption("--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                     help="the Redis server the suite uses (its databases 14 and 15); default $REDIS_URL")


@pytest.hookimpl(trylast=True)  # after pytest-randomly's, whose seed it may replace
def pytest_configure(config):
    config.stash[RUN_SEED] = run_seed(config)


def pytest_report_header(config):
    return [f"random: seeded before each test from the run's seed and the test's id; replay with "
            f"{SEED_VARIABLE}={config.stash[RUN_SEED]}",
            f"hypothesis: profile {HYPOTHESIS_PROFILE!r} (HYPOTHESIS_PROFILE)"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    seed_random_for(item.config.stash[RUN_SEED], item.nodeid)


@pytest.fixture
def redis_url(request) -> str:
    """A Redis URL on the suite's own database, emptied first."""
    parts = urlsplit(request.config.getoption("--redis-url"))
    url = urlunsplit(parts._replace(path=f"/{TEST_DB}"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis does not answer at {url} (run the suite with `make test`): {exc}")
    return url


@pytest.fixture
def store(redis_url) -> Store:
    return Store(connect_redis(redis_url))


@pytest.fixture(scope="module")
def stack_redis(request):
    """A Redis for one module's live stack: a private server when redis-server is installed, else database 14."""
    if shutil.which("redis-server"):
        server = RedisServer().start()
        yield server.url
        server.stop()
        return
    parts = urlsplit(request.config.getoption("--redis-url"))
    url = urlunsplit(parts._replace(path=f"/{STACK_DB}"))
    redis.Redis.from_url(url).flushdb()
    yield url
