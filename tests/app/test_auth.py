"""Flex token authentication: IAM's answers cached briefly, never past a token's expiry."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from support.edge import bearer, unknown_token

from app.auth import INVALID_TOKEN_CACHE_S, TOKEN_CACHE_S, cache_seconds
from baton.infrastructure.twilio_gateway import FlexToken
from simulator.profiles import READINGS

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def iam_calls(sim) -> int:
    return len(sim.requests.find(product="iam"))


def token_ttl(store, token: str) -> int:
    return store.redis.ttl("baton:token:" + hashlib.sha256(token.encode()).hexdigest())


def test_a_token_is_validated_once_for_several_requests(client, sim, scenario, store):
    """Two requests with the same token cost IAM one call; the answer is cached by the token's hash for 300 s."""
    before = iam_calls(sim)
    for _ in range(2):
        response = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}",
                              headers=bearer(scenario.tokens["alice"]))
        assert response.status_code == 200
    assert iam_calls(sim) - before == 1
    assert 290 < token_ttl(store, scenario.tokens["alice"]) <= TOKEN_CACHE_S


def test_a_token_is_never_cached_past_its_expiry(client, sim, scenario, store):
    """A token expiring in 3 s is cached for at most 3 s."""
    token = sim.iam.mint_token(scenario.agents["alice"], "alice", ttl_seconds=3)
    response = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=bearer(token))
    assert response.status_code == 200
    assert 0 < token_ttl(store, token) <= 3


def test_a_refused_token_is_remembered_briefly(client, sim, scenario, store):
    """A token IAM refuses is a 401 invalid_token, and asking again within 30 s does not call IAM."""
    before = iam_calls(sim)
    token = unknown_token()
    for _ in range(2):
        response = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=bearer(token))
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    assert iam_calls(sim) - before == 1
    assert 0 < token_ttl(store, token) <= INVALID_TOKEN_CACHE_S


@pytest.fixture(params=READINGS["iam_invalid_token"])
def iam_reading(request, sim):
    """Each reading of how IAM refuses a token, restored to the default afterwards (the simulator is shared)."""
    sim.profile.update(iam_invalid_token=request.param)
    yield request.param
    sim.profile.update(iam_invalid_token=READINGS["iam_invalid_token"][0])


@pytest.mark.parametrize("expired", [False, True], ids=["unknown token", "expired token"])
def test_a_token_iam_refuses_is_a_401_under_every_reading(client, sim, scenario, iam_reading, expired):
    """Whether IAM refuses a token with valid false or with a 401, the agent API answers 401 invalid_token."""
    token = sim.iam.mint_token(scenario.agents["alice"], "alice", ttl_seconds=-1) if expired else unknown_token()
    before = iam_calls(sim)

    response = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=bearer(token))

    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    assert iam_calls(sim) - before == 1


def test_iam_failing_is_a_503_not_a_refused_token(client, sim, scenario, iam_reading):
    """A 5xx from IAM says nothing about the token, in either reading: 503 unavailable, and nothing is cached."""
    sim.faults.add(product="iam", sequence=[503, 503, 503])  # the gateway tries a read three times
    headers = bearer(scenario.tokens["alice"])

    failed = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=headers)
    retried = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=headers)

    assert failed.status_code == 503 and failed.get_json()["error"]["code"] == "unavailable"
    assert retried.status_code == 200


@pytest.mark.parametrize("answer, seconds", [
    (FlexToken(True, "WK1", "alice", ("agent",), NOW + timedelta(hours=1)), TOKEN_CACHE_S),
    (FlexToken(True, "WK1", "alice", ("agent",), NOW + timedelta(seconds=2.9)), 2),
    (FlexToken(True, "WK1", "alice", ("agent",), NOW + timedelta(seconds=0.5)), 0),
    (FlexToken(True, "WK1", "alice", ("agent",), None), 0),
    (FlexToken(False), INVALID_TOKEN_CACHE_S),
])
def test_cache_lifetime_is_bounded_by_the_tokens_expiry(answer, seconds):
    """A valid answer is kept 300 s at most and whole seconds short of expiry; a refusal 30 s."""
    assert cache_seconds(answer, NOW) == seconds
