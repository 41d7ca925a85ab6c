"""Every error of the HTTP edge is Baton's JSON error, including Flask's and those of Redis and Twilio being away."""

from __future__ import annotations

import dataclasses

from support.edge import bearer

from app import create_app


def test_unknown_routes_and_methods_answer_json(client):
    """An unknown route is a JSON 404, and a wrong method a JSON 405 that keeps its Allow header."""
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.delete("/v1/transfers")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_a_body_too_large_is_refused(client):
    """A body over the limit is a JSON 413 before anything reads it."""
    response = client.post("/webhooks/taskrouter", data={"Body": "x" * 300_000}, headers={"X-Twilio-Signature": "s"})
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"


def test_redis_away_is_a_503(config, scenario):
    """When Redis does not answer, an API request is a 503 unavailable."""
    app = create_app(dataclasses.replace(config, redis_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/v1/settings", headers=bearer(scenario.tokens["alice"]))
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"


def test_twilio_away_while_authorizing_is_a_503(config, scenario):
    """When IAM cannot be reached to validate a token, the request is a 503 unavailable."""
    app = create_app(dataclasses.replace(config, twilio_api_base="http://127.0.0.1:1"))
    response = app.test_client().get("/v1/transfers/tr_1", headers=bearer(scenario.tokens["alice"]))
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
