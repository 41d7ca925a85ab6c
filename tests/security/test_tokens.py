"""Bearer tokens: what IAM is never asked about (what cannot be a Flex token, Baton's own secrets), a client guessing
tokens held back before it spends the account's IAM requests, and how soon a revoked token or a removed role stops
working."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
import time
from datetime import datetime, timedelta, timezone

import pytest
from support.edge import ADMIN_TOKEN, bearer, unknown_token

import app.auth
from app import create_app
from app.auth import (
    CHANGE_TOKEN_CACHE_S,
    TOKEN_CACHE_S,
    TOKEN_REFUSAL_WINDOW_S,
    TOKEN_REFUSALS_PER_CLIENT,
    could_be_a_flex_token,
)
from baton.infrastructure.twilio_gateway import FlexToken

ANOTHER_CLIENT = {"REMOTE_ADDR": "198.51.100.7"}


def iam_calls(sim) -> int:
    return len(sim.requests.find(product="iam"))


def error_of(response) -> dict:
    return response.get_json()["error"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jose(header: object, *segment_lengths: int) -> str:
    """A compact JOSE serialization: ``header`` as base64url JSON, then random segments of these lengths."""
    return ".".join([b64(json.dumps(header).encode()), *(secrets.token_urlsafe(n)[:n] for n in segment_lengths)])


# The protected header of a real Flex token (a JWE, "alg": "dir", so its encrypted key is empty), as published in a
# public Twilio Functions example; the token itself is about 2,000 characters.
FLEX_JWE_HEADER = {"zip": "DEF", "kid": "SAS_S3-KMS_v1", "cty": "twilio-fpa;v=1", "enc": "A256GCM", "alg": "dir"}
# Twilio's access tokens are JWTs.
ACCESS_TOKEN_HEADER = {"typ": "JWT", "alg": "HS256", "cty": "twilio-fpa;v=1"}


@pytest.mark.parametrize("token", [
    jose(FLEX_JWE_HEADER, 0, 16, 1900, 22),
    jose(ACCESS_TOKEN_HEADER, 400, 43),
    secrets.token_urlsafe(32),  # the simulator's
], ids=["Flex JWE", "access token JWT", "simulator token"])
def test_every_token_twilio_or_the_simulator_mints_may_be_a_flex_token(token):
    assert could_be_a_flex_token(token)


NOT_TOKENS = {
    "too short": "0123456789abcdef",
    "too long": "a" * 8193,
    "not base64url": "%27%20OR%201%3D1--" + "a" * 30,
    "not ascii": "jeton-" + "é" * 30,
    "two segments": "a" * 20 + "." + "b" * 20,
    "four segments": jose(ACCESS_TOKEN_HEADER, 10, 10, 10),
    "header not base64": "a" * 21 + ".bbbbbbbbbb.cccccccccc",
    "header not json": b64(b"not json at all") + ".bbbbbbbbbb.cccccccccc",
    "header without alg": jose({"typ": "JWT"}, 20, 20),
    "header nested deep": b64(b"[" * 2500 + b"]" * 2500) + ".bbbbbbbbbb.cccccccccc",
}


@pytest.mark.parametrize("token", NOT_TOKENS.values(), ids=NOT_TOKENS.keys())
def test_a_bearer_that_cannot_be_a_flex_token_is_refused_without_asking_iam(client, sim, token):
    """A bearer no token of Twilio's or the simulator's can look like is a 401 invalid_token, and IAM never sees it."""
    assert not could_be_a_flex_token(token)
    before = iam_calls(sim)
    response = client.get("/v1/transfers/tr_1", headers=bearer(token))
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"
    assert iam_calls(sim) == before


@pytest.fixture
def secrets_app(config):
    """The app with every secret Baton may hold set, each shaped so that only its being Baton's own refuses it."""
    return create_app(dataclasses.replace(config, metrics_token=secrets.token_hex(32), secret_key=secrets.token_hex(32),
                                          summary_llm_api_key="sk-" + secrets.token_urlsafe(32)))


def test_batons_own_secrets_are_never_sent_to_iam(secrets_app, sim):
    """ADMIN_TOKEN on the agent API, and METRICS_TOKEN, SECRET_KEY or the LLM's API key anywhere, are refused as Flex
    tokens without Twilio ever receiving them."""
    config, client = secrets_app.config["BATON"], secrets_app.test_client()
    before = iam_calls(sim)
    attempts = [("/v1/transfers/tr_1", ADMIN_TOKEN), ("/v1/transfers?task_sid=WT" + "0" * 32, ADMIN_TOKEN)]
    attempts += [(path, secret) for path in ("/v1/transfers/tr_1", "/v1/settings")
                 for secret in (config.metrics_token, config.secret_key, config.summary_llm_api_key)]
    for path, secret in attempts:
        assert could_be_a_flex_token(secret)
        response = client.get(path, headers=bearer(secret))
        assert response.status_code == 401 and error_of(response)["code"] == "invalid_token", path
        assert "Baton's own tokens" in error_of(response)["message"]
    assert iam_calls(sim) == before
    assert client.get("/v1/settings", headers=bearer(ADMIN_TOKEN)).status_code == 200  # where it belongs


# A client guessing tokens


def test_a_client_guessing_tokens_is_held_back_before_iam(client, sim, scenario, caplog):
    """The probe's attack: unknown tokens one after another. IAM is asked about the first ten of a window only; the
    next are 429 rate_limited with Retry-After, logged once. Agents whose tokens IAM already knows go on, and so do
    other addresses; a token IAM was never asked about waits out the window from this address."""
    caplog.set_level(logging.INFO)
    alice = bearer(scenario.tokens["alice"])
    assert client.get("/v1/transfers/tr_1", headers=alice).status_code == 404
    before = iam_calls(sim)

    guesses = [client.get("/v1/transfers/tr_1", headers=bearer(unknown_token()))
               for _ in range(TOKEN_REFUSALS_PER_CLIENT + 30)]

    assert [answer.status_code for answer in guesses] == [401] * TOKEN_REFUSALS_PER_CLIENT + [429] * 30
    assert iam_calls(sim) - before == TOKEN_REFUSALS_PER_CLIENT
    assert error_of(guesses[-1])["code"] == "rate_limited"
    assert 1 <= int(guesses[-1].headers["Retry-After"]) <= TOKEN_REFUSAL_WINDOW_S
    paused = [record for record in caplog.records if "refused without asking IAM" in record.getMessage()]
    assert len(paused) == 1 and paused[0].levelno == logging.WARNING
    assert client.get("/v1/transfers/tr_1", headers=alice).status_code == 404
    assert client.get("/v1/transfers/tr_1", headers=bearer(unknown_token()),
                      environ_base=ANOTHER_CLIENT).status_code == 401
    fresh = sim.iam.mint_token(scenario.agents["bob"], "bob")
    assert client.get("/v1/transfers/tr_1", headers=bearer(fresh)).status_code == 429
    assert iam_calls(sim) - before == TOKEN_REFUSALS_PER_CLIENT + 1


def test_guessing_the_admin_token_on_the_api_is_held_back_too(client, sim):
    """Guesses at ADMIN_TOKEN on /v1/settings count as refused tokens even when IAM is never asked (these, shaped like
    `openssl rand -base64 32`, cannot be Flex tokens): past the limit the address gets 429 for the right token as for
    a wrong one, so no answer tells a right guess; another address goes on using it."""
    before = iam_calls(sim)
    guesses = [client.get("/v1/settings", headers=bearer(base64.b64encode(secrets.token_bytes(32)).decode()))
               for _ in range(TOKEN_REFUSALS_PER_CLIENT + 1)]
    assert [answer.status_code for answer in guesses] == [401] * TOKEN_REFUSALS_PER_CLIENT + [429]
    right = client.get("/v1/settings", headers=bearer(ADMIN_TOKEN))
    assert right.status_code == 429 and error_of(right)["code"] == "rate_limited"
    assert iam_calls(sim) == before
    assert client.get("/v1/settings", headers=bearer(ADMIN_TOKEN), environ_base=ANOTHER_CLIENT).status_code == 200


def test_behind_herokus_router_the_client_is_the_address_it_appended(config, sim):
    """With TRUST_X_FORWARDED_FOR the client is X-Forwarded-For's last address, the one Heroku's router appends: what a
    client writes before it changes nothing. Without it, the header is not read at all."""
    trusting = create_app(dataclasses.replace(config, trust_forwarded_for=True)).test_client()
    router = {"REMOTE_ADDR": "10.1.2.3"}
    answers = [trusting.get("/v1/transfers/tr_1", headers={**bearer(unknown_token()),
                                                            "X-Forwarded-For": f"192.0.2.{n}, 203.0.113.5"},
                            environ_base=router).status_code for n in range(TOKEN_REFUSALS_PER_CLIENT + 1)]
    assert answers == [401] * TOKEN_REFUSALS_PER_CLIENT + [429]
    other = trusting.get("/v1/transfers/tr_1", headers={**bearer(unknown_token()), "X-Forwarded-For": "203.0.113.6"},
                         environ_base=router)
    assert other.status_code == 401

    direct = create_app(config).test_client()
    answers = [direct.get("/v1/transfers/tr_1", headers={**bearer(unknown_token()), "X-Forwarded-For": f"192.0.2.{n}"},
                          environ_base=ANOTHER_CLIENT).status_code for n in range(TOKEN_REFUSALS_PER_CLIENT + 1)]
    assert answers == [401] * TOKEN_REFUSALS_PER_CLIENT + [429]


# Revocation


@pytest.fixture
def iam_now_says(app, monkeypatch):
    """Make IAM give another answer from now on (a token revoked, a role removed in Flex); count what it is asked."""
    asked = []

    def now_says(answer: FlexToken) -> list[str]:
        monkeypatch.setattr(app.extensions["baton.gateway"], "validate_flex_token",
                            lambda token: asked.append(token) or answer)
        return asked

    return now_says


def an_hour_from_now() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


@pytest.mark.parametrize("change", ["token revoked", "admin role removed"])
def test_a_revoked_token_or_a_removed_role_stops_changing_settings_at_once(client, sim, scenario, iam_now_says,
                                                                           monkeypatch, change):
    """A Flex admin reads the settings (IAM's answer is cached), then loses the token or the role. Reads go on from
    the cache for up to TOKEN_CACHE_S; a change asks IAM again once the answer is CHANGE_TOKEN_CACHE_S old (shortened
    here) and is refused, and the reads with it."""
    worker = scenario.agents["erin"]
    token = sim.iam.mint_token(worker, "erin", roles=("admin",))
    assert client.get("/v1/settings", headers=bearer(token)).status_code == 200
    asked = iam_now_says(FlexToken(False) if change == "token revoked"
                         else FlexToken(True, worker, "erin", ("agent",), an_hour_from_now()))
    monkeypatch.setattr(app.auth, "CHANGE_TOKEN_CACHE_S", 0.2)
    time.sleep(0.3)

    assert client.get("/v1/settings", headers=bearer(token)).status_code == 200
    refused = client.patch("/v1/settings", json={"max_attempts": 3}, headers=bearer(token))

    status, code = (401, "invalid_token") if change == "token revoked" else (403, "admin_only")
    assert refused.status_code == status and error_of(refused)["code"] == code
    assert asked == [token]
    assert client.get("/v1/settings", headers=bearer(token)).status_code == status


def test_a_revoked_agent_token_stops_canceling(client, sim, scenario, iam_now_says, monkeypatch):
    """The same for an agent's requests that change a transfer: cancel after the revocation is a 401."""
    token = sim.iam.mint_token(scenario.agents["alice"], "alice")
    assert client.post("/v1/transfers/tr_1/cancel", headers=bearer(token)).status_code == 404
    iam_now_says(FlexToken(False))
    monkeypatch.setattr(app.auth, "CHANGE_TOKEN_CACHE_S", 0.2)
    time.sleep(0.3)
    response = client.post("/v1/transfers/tr_1/cancel", headers=bearer(token))
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"


def test_changes_in_a_burst_ask_iam_once(client, sim, scenario):
    """Within CHANGE_TOKEN_CACHE_S of IAM's answer, an agent's next changes take it from the cache."""
    assert CHANGE_TOKEN_CACHE_S <= 10 < TOKEN_CACHE_S
    token = sim.iam.mint_token(scenario.agents["alice"], "alice")
    before = iam_calls(sim)
    for _ in range(3):
        assert client.post("/v1/transfers/tr_1/cancel", headers=bearer(token)).status_code == 404
    assert iam_calls(sim) - before == 1
