"""The README's Flex UI plugin call: from the Flex origin, in a browser, with the agent's token."""

from __future__ import annotations

from support.edge import bearer

FLEX = "https://flex.twilio.com"


def test_the_browser_may_call_the_agent_api_from_flex(client, scenario):
    """A preflight from the Flex UI's origin is allowed with the headers the plugin sends; the call then answers
    202 with the headers the plugin may read."""
    preflight = client.options("/v1/transfers", headers={
        "Origin": FLEX, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == FLEX
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    answer = client.post("/v1/transfers", json={"task_sid": scenario.conversation.task_sid,
                                                "to": scenario.agents["carol"]},
                         headers={**bearer(scenario.tokens["alice"]), "Origin": FLEX, "Idempotency-Key": "click-1"})
    assert answer.status_code == 202 and answer.headers["Access-Control-Allow-Origin"] == FLEX
    assert "Location" in answer.headers["Access-Control-Expose-Headers"]


def test_other_origins_are_not_allowed(client):
    """A page on another origin gets no CORS headers: its browser will not let it read Baton's answers."""
    answer = client.options("/v1/transfers", headers={"Origin": "https://evil.example.com",
                                                      "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Origin" in answer.headers["Vary"]
