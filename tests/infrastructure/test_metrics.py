"""Metrics in one process: the webhooks counted by the edge, the workers' samples through Redis, /metrics' token."""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from support.edge import PUBLIC_BASE_URL, bearer, payload, signature

from app import create_app
from baton.infrastructure import metrics
from baton.infrastructure.metrics import ACCEPT_SECONDS, TRANSFERS, RedisSink


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples_of(response.get_data(as_text=True))


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_webhooks_are_counted_by_endpoint_and_status(client, scenario):
    """A signed TaskRouter event (204) and a forged one (403) are counted under their endpoint and status."""
    before = scrape(client)
    event = payload("taskrouter/reservation_accepted_not_a_transfer")
    url = PUBLIC_BASE_URL + "/webhooks/taskrouter"
    assert client.post("/webhooks/taskrouter", data=event,
                       headers={"X-Twilio-Signature": signature(scenario.auth_token, url, event)}).status_code == 204
    assert client.post("/webhooks/taskrouter", data=event, headers={"X-Twilio-Signature": "forged"}).status_code == 403
    after = scrape(client)

    for status in ("204", "403"):
        sample = key("baton_webhook_requests_total", endpoint="taskrouter", status=status)
        assert after[sample] - before.get(sample, 0) == 1
    duration = key("baton_webhook_duration_seconds_count", endpoint="taskrouter")
    assert after[duration] - before.get(duration, 0) == 2


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


@pytest.fixture
def guarded_client(config):
    return create_app(dataclasses.replace(config, metrics_token="metrics-token-0123456789")).test_client()


def test_metrics_token_is_required_when_set(guarded_client):
    """With METRICS_TOKEN, /metrics answers 401 without it or with another token, 200 with it."""
    assert guarded_client.get("/metrics").status_code == 401
    assert guarded_client.get("/metrics", headers=bearer("metrics-token-wrong")).status_code == 401
    response = guarded_client.get("/metrics", headers=bearer("metrics-token-0123456789"))
    assert response.status_code == 200 and b"baton_transfers" in response.data


def test_without_a_token_metrics_answer_this_host_only(client):
    """Without METRICS_TOKEN, /metrics answers a client on this host (loopback, as the test client and a local
    Prometheus are); another address, or a request a proxy relayed to loopback, gets 403 metrics_not_public."""
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for request in ({"environ_base": {"REMOTE_ADDR": "203.0.113.9"}},
                    {"environ_base": {"REMOTE_ADDR": "10.1.2.3"}, "headers": {"X-Forwarded-For": "127.0.0.1"}},
                    {"headers": {"X-Forwarded-For": "203.0.113.9"}},
                    {"headers": {"Forwarded": "for=203.0.113.9"}}):
        response = client.get("/metrics", **request)
        assert response.status_code == 403, request
        assert response.get_json()["error"]["code"] == "metrics_not_public"
        assert b"baton_" not in response.data


def test_metrics_public_opens_them_to_anyone(config):
    """METRICS_PUBLIC=true is the operator's explicit choice to serve /metrics without a token to every address."""
    client = create_app(dataclasses.replace(config, metrics_public=True)).test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200


def test_with_a_token_even_this_host_must_send_it(guarded_client):
    """METRICS_TOKEN set: no address is trusted, loopback included."""
    assert guarded_client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 401
