"""Headers on every answer: X-Content-Type-Options: nosniff always, Strict-Transport-Security behind https."""

from __future__ import annotations

import dataclasses

import pytest
from support.edge import bearer

from app import STRICT_TRANSPORT_SECURITY, create_app

# One request of each kind of answer: a probe, the API's JSON and errors, Flask's own errors, a refused webhook,
# the admin page and its files, the metrics and the API's description.
REQUESTS = [
    ("GET", "/healthz", {}),
    ("GET", "/metrics", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/v1/transfers/tr_1", {}),
    ("GET", "/v1/transfers/tr_1", bearer("not-a-flex-token")),
    ("DELETE", "/v1/settings", {}),
    ("GET", "/no/such/path", {}),
    ("POST", "/webhooks/taskrouter", {"X-Twilio-Signature": "forged"}),
    ("GET", "/admin/sign-in", {}),
    ("GET", "/admin/static/admin.css", {}),
]


@pytest.mark.parametrize("method, path, headers", REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_every_answer_forbids_sniffing_and_keeps_browsers_on_https(client, method, path, headers):
    """Behind an https PUBLIC_BASE_URL every answer, success or error, has both headers."""
    response = client.open(path, method=method, headers=headers)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Strict-Transport-Security"] == STRICT_TRANSPORT_SECURITY == "max-age=31536000"


def test_no_strict_transport_security_over_plain_http(config):
    """Behind an http PUBLIC_BASE_URL (a local run) there is no https to keep to: no Strict-Transport-Security."""
    client = create_app(dataclasses.replace(config, public_base_url="http://127.0.0.1:5000")).test_client()
    for method, path, headers in REQUESTS:
        response = client.open(path, method=method, headers=headers)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in response.headers
