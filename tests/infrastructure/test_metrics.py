"""baton.infrastructure.metrics in one process: the workers' samples through Redis, merged into the web's."""

from __future__ import annotations

import time

import redis
from support.metrics import key, scrape

from baton.infrastructure import metrics
from baton.infrastructure.metrics import ACCEPT_SECONDS, TRANSFERS, RedisSink


def test_the_workers_samples_in_redis_are_added_to_the_webs(client, store):
    """What a worker process recorded (flushed to Redis) and what this process recorded are one series, with
    cumulative buckets."""
    before = scrape(client)
    metrics.transfer_accepted("warm", 12.0)  # this process: the web's local metrics
    sink = RedisSink(store, every_s=3600)
    sink.observe(ACCEPT_SECONDS, ("warm",), 3.0)
    sink.observe(ACCEPT_SECONDS, ("warm",), 700.0)
    sink.inc(TRANSFERS, ("completed", "warm"), 2)
    assert store.metrics() == {}  # nothing leaves the worker before its flush
    sink.flush()
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return after.get(key(name, **labels), 0) - before.get(key(name, **labels), 0)

    assert grew("baton_transfer_accept_seconds_count", mode="warm") == 3
    assert grew("baton_transfer_accept_seconds_sum", mode="warm") == 715.0
    assert grew("baton_transfer_accept_seconds_bucket", mode="warm", le="2.5") == 0
    assert grew("baton_transfer_accept_seconds_bucket", mode="warm", le="5.0") == 1
    assert grew("baton_transfer_accept_seconds_bucket", mode="warm", le="15.0") == 2
    assert grew("baton_transfer_accept_seconds_bucket", mode="warm", le="600.0") == 2
    assert grew("baton_transfer_accept_seconds_bucket", mode="warm", le="+Inf") == 3
    assert grew("baton_transfers_total", outcome="completed", mode="warm") == 2


class StoreAway:
    """A store whose Redis is away until ``back`` is set."""

    def __init__(self, store):
        self.store = store
        self.back = False

    def add_metrics(self, increments) -> None:
        if not self.back:
            raise redis.ConnectionError("Connection refused")
        self.store.add_metrics(increments)


def test_a_failed_flush_keeps_its_samples_for_the_next(store):
    """Redis away when a task ends: the worker's samples are kept and sent with the next flush."""
    away = StoreAway(store)
    sink = RedisSink(away, every_s=3600)
    sink.inc(TRANSFERS, ("failed", "cold"))
    sink.flush()
    away.back = True
    sink.inc(TRANSFERS, ("failed", "cold"))
    sink.flush()
    assert store.metrics() == {metrics.sample_key("baton_transfers_total", ("outcome", "mode"), ("failed", "cold")): 2}


def test_a_worker_process_flushes_its_samples_by_itself(store):
    """No task end is needed: the recording process sends what it recorded every ``every_s`` seconds."""
    sink = RedisSink(store, every_s=0.05)
    sink.inc(TRANSFERS, ("canceled", "cold"))
    deadline = time.monotonic() + 5
    while not store.metrics() and time.monotonic() < deadline:
        time.sleep(0.01)
    sample = metrics.sample_key("baton_transfers_total", ("outcome", "mode"), ("canceled", "cold"))
    assert store.metrics() == {sample: 1}


def test_queue_depth_is_read_from_the_broker(client, store):
    """The gauge is the length of Celery's queue when scraped."""
    store.redis.lpush("celery", "a", "b", "c")
    assert scrape(client)[key("baton_celery_queue_depth", queue="celery")] == 3
