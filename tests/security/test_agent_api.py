"""The agent API's defences: Flex tokens cached by hash and never past their expiry, per-worker rate limits on
requests that change something, and admin endpoints closed to agents."""

from __future__ import annotations

import hashlib
import time

import pytest
from support.edge import bearer

import app.auth
from app.auth import RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW_S


def iam_calls(sim) -> int:
    return len(sim.requests.find(product="iam"))


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


# Flex tokens


def test_a_token_is_kept_in_redis_only_as_its_hash(client, scenario, store):
    """After a request, no Redis key or value holds the Flex token; its SHA-256 names the cache entry."""
    token = scenario.tokens["alice"]
    assert client.get("/v1/transfers/tr_1", headers=bearer(token)).status_code == 404
    keys = store.redis.keys("*")
    assert f"baton:token:{hashlib.sha256(token.encode()).hexdigest()}" in keys
    for key in keys:
        assert token not in key and token not in str(store.redis.dump(key))


def test_a_cached_answer_is_not_used_past_the_tokens_expiry(client, sim, scenario):
    """A token valid for 1.5 s is accepted, then refused once it has expired: IAM is asked again, not the cache."""
    token = sim.iam.mint_token(scenario.agents["alice"], "alice", ttl_seconds=1.5)
    assert client.get("/v1/transfers/tr_1", headers=bearer(token)).status_code == 404
    time.sleep(1.6)
    before = iam_calls(sim)
    response = client.get("/v1/transfers/tr_1", headers=bearer(token))
    assert response.status_code == 401 and error_code(response) == "invalid_token"
    assert iam_calls(sim) == before + 1


# Rate limits


def cancel(client, token: str, transfer_id: str = "tr_1"):
    return client.post(f"/v1/transfers/{transfer_id}/cancel", headers=bearer(token))


def test_a_worker_past_its_limit_gets_a_429_with_retry_after(client, scenario):
    """The 21st change request of a worker within 10 s is a 429 rate_limited with Retry-After of at most 10 s."""
    token = scenario.tokens["alice"]
    for _ in range(RATE_LIMIT_REQUESTS):
        assert cancel(client, token).status_code == 404
    refused = cancel(client, token)
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= RATE_LIMIT_WINDOW_S


def test_the_limit_is_per_worker_and_counts_only_changes(client, scenario):
    """Another worker is not limited by Alice's requests, and reads are answered while Alice's changes are not."""
    alice = scenario.tokens["alice"]
    for _ in range(RATE_LIMIT_REQUESTS + 1):
        cancel(client, alice)
    assert cancel(client, alice).status_code == 429
    assert cancel(client, scenario.tokens["carol"]).status_code == 404
    for _ in range(RATE_LIMIT_REQUESTS + 1):
        assert client.get("/v1/transfers/tr_1", headers=bearer(alice)).status_code == 404
    assert client.post("/v1/transfers/tr_1/leave", headers=bearer(alice)).status_code == 429


def test_a_limited_request_records_nothing(client, scenario, store, jobs):
    """A transfer request refused with a 429 stores no transfer, enqueues nothing and calls no Twilio API."""
    token = scenario.tokens["alice"]
    for _ in range(RATE_LIMIT_REQUESTS):
        cancel(client, token)
    response = client.post("/v1/transfers", headers=bearer(token),
                           json={"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"]})
    assert response.status_code == 429
    assert store.redis.keys("baton:transfer:*") == [] and jobs() == []


def test_the_window_ends_and_the_limit_is_configurable(client, scenario, monkeypatch):
    """With the limit set to 2 requests per 0.5 s, the third is refused and accepted again once the window ends."""
    monkeypatch.setattr(app.auth, "RATE_LIMIT_REQUESTS", 2)
    monkeypatch.setattr(app.auth, "RATE_LIMIT_WINDOW_S", 0.5)
    token = scenario.tokens["alice"]
    assert [cancel(client, token).status_code for _ in range(3)] == [404, 404, 429]
    time.sleep(0.6)
    assert cancel(client, token).status_code == 404


def test_a_window_is_counted_in_one_key_that_expires_with_it(store):
    """count_request counts in one key per subject whose lifetime is the window; a new window starts at one."""
    assert [store.count_request("WK1", 10)[0] for _ in range(3)] == [1, 2, 3]
    count, remaining = store.count_request("WK2", 10)
    assert count == 1 and 9 < remaining <= 10
    assert set(store.redis.keys("baton:ratelimit:*")) == {"baton:ratelimit:WK1", "baton:ratelimit:WK2"}
    assert 9000 < store.redis.pttl("baton:ratelimit:WK1") <= 10_000
    store.redis.delete("baton:ratelimit:WK1")
    assert store.count_request("WK1", 10)[0] == 1


# Admin endpoints


@pytest.mark.parametrize("agent", ["alice", "erin"])
def test_the_admin_page_refuses_an_agents_bearer_token(client, scenario, agent):
    """The admin page's JSON and settings form answer an agent's or supervisor's Flex bearer token as signed out."""
    headers = bearer(scenario.tokens[agent])
    listing = client.get("/admin/transfers.json", headers=headers)
    assert listing.status_code == 401
    form = client.get("/admin/settings", headers=headers)
    assert form.status_code == 302 and "/admin/sign-in" in form.headers["Location"]
