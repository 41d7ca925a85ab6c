"""Flex token validation at /iam, as Flex's token validator calls it."""

import pytest
import requests


def validate(sim, token, auth=None, account_sid=None):
    url = f"{sim.url}/iam/v1/Accounts/{account_sid or sim.account_sid}/Tokens/validate"
    return requests.post(url, json={"token": token}, auth=auth or (sim.account_sid, sim.auth_token))


def test_minted_token_is_valid(sim, world):
    """A token the simulator minted validates with the worker, identity, roles and expiration."""
    token = sim.iam.mint_token(world.alice, "alice", roles=["agent", "supervisor"])

    response = validate(sim, token)

    assert response.status_code == 200
    body = response.json()
    assert (body["valid"], body["code"], body["message"]) == (True, 0, None)
    assert (body["worker_sid"], body["identity"], body["roles"]) == (world.alice, "alice", ["agent", "supervisor"])
    assert body["expiration"].endswith("Z")


def test_unknown_token_is_invalid(sim):
    """Under "ok_invalid" (the default), a token the simulator never minted answers 200, valid false, code 20101."""
    body = validate(sim, "not-a-token").json()

    assert (body["valid"], body["code"], body["worker_sid"]) == (False, 20101, None)


def test_expired_token_is_invalid(sim, world):
    """Under "ok_invalid" (the default), a token past its lifetime answers valid false with code 20104."""
    token = sim.iam.mint_token(world.alice, "alice", ttl_seconds=-1)

    body = validate(sim, token).json()

    assert (body["valid"], body["code"]) == (False, 20104)


@pytest.mark.parametrize(("minted", "code", "message"), [
    (False, 20101, "Invalid Access Token"),
    (True, 20104, "Access Token expired or expiration date invalid"),
], ids=["unknown", "expired"])
def test_refused_token_is_a_401_under_http_401(sim, world, minted, code, message):
    """Under "http_401", an unknown or expired token answers 401 with Twilio's error body and the same code."""
    sim.profile.update(iam_invalid_token="http_401")
    token = sim.iam.mint_token(world.alice, "alice", ttl_seconds=-1) if minted else "not-a-token"

    response = validate(sim, token)

    assert response.status_code == 401
    assert response.json() == {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                               "status": 401}


def test_good_token_is_valid_under_http_401(sim, world):
    """Under "http_401", a good token still answers 200 with valid true."""
    sim.profile.update(iam_invalid_token="http_401")

    response = validate(sim, sim.iam.mint_token(world.alice, "alice"))

    assert (response.status_code, response.json()["valid"]) == (200, True)


def test_wrong_credentials_are_401(sim, world):
    """Validating with the wrong auth token is refused with 401 and code 20003."""
    token = sim.iam.mint_token(world.alice, "alice")

    response = validate(sim, token, auth=(sim.account_sid, "wrong"))

    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_other_account_is_404(sim):
    """Validating under another account's path answers 404."""
    response = validate(sim, "whatever", account_sid="AC" + "f" * 32)

    assert response.status_code == 404


def test_body_without_token_is_400(sim):
    """A body without a token is refused with 400."""
    url = f"{sim.url}/iam/v1/Accounts/{sim.account_sid}/Tokens/validate"

    response = requests.post(url, json={"jwt": "x"}, auth=(sim.account_sid, sim.auth_token))

    assert response.status_code == 400
