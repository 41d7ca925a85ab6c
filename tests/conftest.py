"""Fixtures shared by the whole suite: real Redis, isolated per test."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from baton.devstack import RedisServer
from baton.store import Store, connect_redis

# The suite owns one Redis database and empties it before each test that uses it.
TEST_DB = 15
# Without a private redis-server, the live stacks' database, apart from TEST_DB: emptying a database
# under a running worker would also drop Celery's queue bindings.
STACK_DB = 14


def pytest_addoption(parser):
    parser.addoption("--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                     help="the Redis server the suite uses (its databases 14 and 15); default $REDIS_URL")


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
