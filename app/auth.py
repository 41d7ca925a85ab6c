"""Who is calling: Flex tokens validated through IAM, and the admin bearer token.

IAM's answer for a token is cached in the store under the token's SHA-256 (never the token) for
at most ``TOKEN_CACHE_S``, and never past the token's own expiry, so an agent's polling costs IAM
one call every few minutes. A refused token is remembered for ``INVALID_TOKEN_CACHE_S``: a client
stuck retrying with an expired token then costs IAM one call every half minute, and a token cannot
turn valid later.

Requests of the agent API that change something (start, cancel or leave a transfer: each costs
Twilio calls and enqueues work) are limited per worker to ``RATE_LIMIT_REQUESTS`` in a fixed window
of ``RATE_LIMIT_WINDOW_S``; reads are answered from Redis and polled by the Flex UI, so they are not
counted.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import request

from app import current_config, current_gateway, current_store
from app.errors import ApiError
from baton.twilio_gateway import FlexToken

TOKEN_CACHE_S = 300
INVALID_TOKEN_CACHE_S = 30
RATE_LIMIT_REQUESTS = 20
RATE_LIMIT_WINDOW_S = 10
# Roles that may act on any agent's task and transfer.
PRIVILEGED_ROLES = ("supervisor", "admin")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller.

    worker_sid: the caller's TaskRouter worker; None for the ADMIN_TOKEN bearer.
    roles: Flex roles (``agent``, ``supervisor``, ``admin``).
    """

    worker_sid: str | None
    identity: str | None
    roles: tuple[str, ...] = ()

    @property
    def is_privileged(self) -> bool:
        """A supervisor or an administrator, who may act for any agent."""
        return any(role in self.roles for role in PRIVILEGED_ROLES)


ADMIN_TOKEN_CALLER = Caller(worker_sid=None, identity="admin token", roles=("admin",))


def bearer_token() -> str:
    """The token of ``Authorization: Bearer <token>``; 401 ``missing_token`` when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "missing_token", "Send a Flex token as 'Authorization: Bearer <token>'")
    return token


def authenticate() -> Caller:
    """The caller of the current request, by its Flex token; 401 when it has none or a bad one."""
    return _flex_caller(bearer_token())


def authenticate_admin() -> Caller:
    """An administrator: the ADMIN_TOKEN bearer or a Flex token with the ``admin`` role; 403 for anyone else."""
    token = bearer_token()
    admin_token = current_config().admin_token
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return ADMIN_TOKEN_CALLER
    caller = _flex_caller(token)
    if "admin" not in caller.roles:
        raise ApiError(403, "admin_only", "Only an administrator may do this")
    return caller


def limit_rate(caller: Caller) -> None:
    """429 ``rate_limited``, with ``Retry-After``, for a caller past its requests of the current window."""
    # A Flex user without a worker (IAM always names one for an agent) is counted by identity.
    subject = caller.worker_sid or f"identity:{caller.identity}"
    count, remaining_s = current_store().count_request(subject, RATE_LIMIT_WINDOW_S)
    if count > RATE_LIMIT_REQUESTS:
        retry_after = max(1, math.ceil(remaining_s))
        raise ApiError(429, "rate_limited", f"Too many requests: at most {RATE_LIMIT_REQUESTS} every "
                                            f"{RATE_LIMIT_WINDOW_S} s; try again in {retry_after} s",
                       headers={"Retry-After": str(retry_after)})


def _flex_caller(token: str) -> Caller:
    store = current_store()
    key = hashlib.sha256(token.encode()).hexdigest()
    info = store.cached_token(key)
    if info is None:
        answer = current_gateway().validate_flex_token(token)
        info = _token_info(answer)
        store.cache_token(key, info, cache_seconds(answer, datetime.now(timezone.utc)))
    if not info["valid"]:
        raise ApiError(401, "invalid_token", "The Flex token is not valid: it is unknown or has expired")
    return Caller(info["worker_sid"], info["identity"], tuple(info["roles"]))


def _token_info(answer: FlexToken) -> dict[str, Any]:
    return {"valid": answer.valid, "worker_sid": answer.worker_sid, "identity": answer.identity,
            "roles": list(answer.roles)}


def cache_seconds(answer: FlexToken, now: datetime) -> int:
    """How long IAM's ``answer`` may be reused: whole seconds, so never past the token's expiry."""
    if not answer.valid:
        return INVALID_TOKEN_CACHE_S
    if answer.expires_at is None:  # IAM always says; without it, nothing bounds the cache safely
        return 0
    return min(TOKEN_CACHE_S, int((answer.expires_at - now).total_seconds()))
