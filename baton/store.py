"""Baton's state in Redis: every key name and (de)serialization lives here."""

from __future__ import annotations

import redis

# Short socket timeouts: a web request must fail fast (503) when Redis is away, not hang.
SOCKET_TIMEOUT_S = 2.0


def connect_redis(url: str) -> redis.Redis:
    """A pooled client for ``url`` with bounded connect and read times."""
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                health_check_interval=25, decode_responses=True)


class Store:
    """Transfers, their indexes, dedupe keys and settings, under the ``baton:`` prefix."""

    prefix = "baton:"

    def __init__(self, client: redis.Redis):
        self.redis = client

    def is_reachable(self) -> bool:
        """True when Redis answers a PING."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False
