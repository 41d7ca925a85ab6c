"""app.telemetry's metrics: the webhooks counted by the edge, and who may read /metrics."""

from __future__ import annotations

import dataclasses

import pytest
from support.edge import PUBLIC_BASE_URL, bearer, payload, signature
from support.metrics import key, scrape

from app import create_app


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
