"""Fixtures shared by the whole suite: real Redis, isolated per test."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from baton.store import Store, connect_redis

# The suite owns one Redis database and empties it before each test that uses it.
TEST_DB = 15


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
