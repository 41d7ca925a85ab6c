"""Flex token validation, as Twilio's IAM answers it.

``POST https://iam.twilio.com/v1/Accounts/{AccountSid}/Tokens/validate`` with a JSON body
``{"token": "…"}`` and the account's basic auth is what Flex's own token validator
(twilio/twilio-flex-token-validator) calls. A good token is a 200 with ``valid`` true. A bad or
expired one is, as the profile's ``iam_invalid_token`` switch says, a 200 with ``valid`` false
("ok_invalid") or a 401 with Twilio's error body ("http_401"), with the same codes either way;
docs/twilio-behaviour.md has the sources. The endpoint is absent from Twilio's OpenAPI
descriptions, so the server routes ``/iam/…`` here without spec validation.

The simulator's tokens are opaque random strings it minted itself (real ones are JWEs).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.core import Clock, SimError, invalid, iso_date, new_sid, not_found
from simulator.profiles import Profile

_VALIDATE_PATH = re.compile(r"/v1/Accounts/(?P<account_sid>[^/]+)/Tokens/validate")

# Twilio's access-token error codes. The invalid-token answer follows a captured response in a
# third-party test fixture (code 20101, "Invalid Access Token", every other field null); the
# expired-token code is Twilio's catalogued 20104.
_INVALID = (20101, "Invalid Access Token")
_EXPIRED = (20104, "Access Token expired or expiration date invalid")


@dataclass(frozen=True)
class FlexToken:
    """What a minted token stands for. ``expires_at`` is wall-clock epoch seconds."""

    worker_sid: str
    identity: str
    roles: tuple[str, ...]
    expires_at: float


class Iam:
    """Mints Flex tokens and validates them."""

    def __init__(self, account_sid: str, clock: Clock, profile: Profile | None = None):
        self.account_sid = account_sid
        self.profile = profile or Profile()
        self.flex_instance_sid = new_sid("GO")
        self._clock = clock
        self._tokens: dict[str, FlexToken] = {}

    def mint_token(self, worker_sid: str, identity: str, roles: Sequence[str] = ("agent",),
                   ttl_seconds: float = 3600) -> str:
        """A new token for ``worker_sid``, valid for ``ttl_seconds`` of real time.

        The lifetime is not scaled by the clock's ``time_scale``: the expiration is a wall-clock
        date that clients compare with their own clocks.
        """
        token = secrets.token_urlsafe(32)
        with self._clock.lock:
            self._tokens[token] = FlexToken(worker_sid, identity, tuple(roles), self._clock.now() + ttl_seconds)
        return token

    def validate(self, token: str) -> dict[str, Any]:
        """IAM's answer for ``token``: ``valid`` true with the agent's details, or a refusal with a code.

        Under ``iam_invalid_token="http_401"`` a refusal raises SimError 401 instead of answering.
        """
        with self._clock.lock:
            found = self._tokens.get(token)
        if found is None:
            return self._refusal(*_INVALID)
        if found.expires_at <= self._clock.now():
            return self._refusal(*_EXPIRED)
        return {
            "valid": True,
            "code": 0,
            "message": None,
            "expiration": iso_date(found.expires_at),
            "realm_user_id": found.identity,
            "identity": found.identity,
            "roles": list(found.roles),
            "worker_sid": found.worker_sid,
            "flex_instance_sid": self.flex_instance_sid,
        }

    def handle(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        """Serve one authenticated request under ``/iam``; ``path`` starts at ``/v1``.

        Raises SimError: 404 for another path or account, 405 for a method other than POST, 400
        for a body that is not ``{"token": "…"}``.
        """
        match = _VALIDATE_PATH.fullmatch(path)
        if match is None or match["account_sid"] != self.account_sid:
            raise not_found(path)
        if method != "POST":
            raise SimError(405, 20004, "Method not allowed")
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise invalid("The request body must be JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("token"), str):
            raise invalid("Missing required parameter token")
        return self.validate(document["token"])

    def _refusal(self, code: int, message: str) -> dict[str, Any]:
        if self.profile.iam_invalid_token == "http_401":
            raise SimError(401, code, message)
        return _invalid_answer(code, message)


def _invalid_answer(code: int, message: str) -> dict[str, Any]:
    return {
        "valid": False,
        "code": code,
        "message": message,
        "expiration": None,
        "realm_user_id": None,
        "identity": None,
        "roles": None,
        "worker_sid": None,
    }
