"""Who is calling: Flex tokens validated through IAM, the admin bearer token, and the client's address.

IAM's answer for a token is cached in the store under the token's SHA-256 (never the token) for
at most ``TOKEN_CACHE_S``, and never past the token's own expiry, so an agent's polling costs IAM
one call every few minutes. A request that changes something (``change=True``: start, cancel or
leave a transfer, change the settings) takes a cached answer only while it is at most
``CHANGE_TOKEN_CACHE_S`` old, and asks IAM again otherwise: a token revoked or a role removed in
Flex stops changing anything within 10 s, and stops reading within 5 minutes. A refused token is
remembered for ``INVALID_TOKEN_CACHE_S``: a client stuck retrying with an expired token then costs
IAM one call every half minute, and a token cannot turn valid later.

IAM is never asked about a bearer that cannot be a Flex token by its shape (``could_be_a_flex_token``),
nor about Baton's own secrets (``ADMIN_TOKEN``, ``METRICS_TOKEN``, …), which never leave Baton. Every
bearer refused (by its shape, as one of Baton's secrets, or by IAM) counts against the client's
address (``client_address``): past ``TOKEN_REFUSALS_PER_CLIENT`` within ``TOKEN_REFUSAL_WINDOW_S``, the
address gets 429 for any token IAM has not been asked about yet, and for the admin endpoints whatever
the token, until the window ends. Guessing tokens, or ``ADMIN_TOKEN``, is so held to a few tries a
minute an address, and cannot spend the account's IAM requests; agents whose tokens IAM knows are
never counted.

Requests of the agent API that change something (start, cancel or leave a transfer: each costs
Twilio calls and enqueues work) are limited per worker to ``RATE_LIMIT_REQUESTS`` in a fixed window
of ``RATE_LIMIT_WINDOW_S``; reads are answered from Redis and polled by the Flex UI, so they are not
counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import request

from app import current_config, current_gateway, current_store
from app.errors import ApiError
from baton.infrastructure.twilio_gateway import FlexToken

log = logging.getLogger(__name__)

TOKEN_CACHE_S = 300
CHANGE_TOKEN_CACHE_S = 10
INVALID_TOKEN_CACHE_S = 30
TOKEN_REFUSALS_PER_CLIENT = 10
TOKEN_REFUSAL_WINDOW_S = 60
RATE_LIMIT_REQUESTS = 20
RATE_LIMIT_WINDOW_S = 10
# Roles that may act on any agent's task and transfer.
PRIVILEGED_ROLES = ("supervisor", "admin")
# A Flex token is a JWE in compact form (five base64url segments, about 2,000 characters); Twilio's access
# tokens are JWTs (three). The simulator mints opaque base64url strings of 43 characters.
FLEX_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")
MIN_FLEX_TOKEN_LENGTH = 32
MAX_FLEX_TOKEN_LENGTH = 8192
JOSE_SEGMENTS = (3, 5)  # a JWS (JWT) and a JWE in compact form
# The longest address kept as a rate limit's subject (an IPv6 address has at most 45 characters).
MAX_CLIENT_ADDRESS = 64


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


def parse_bearer(authorization: str) -> str | None:
    """The token of an ``Authorization`` header's value ``Bearer <token>`` (the scheme in any case); None for any
    other value. Every bearer Baton reads (a Flex token, ``ADMIN_TOKEN``, ``METRICS_TOKEN``) is parsed here."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def bearer_token() -> str:
    """The token of ``Authorization: Bearer <token>``; 401 ``missing_token`` when there is none."""
    token = parse_bearer(request.headers.get("Authorization", ""))
    if token is None:
        raise ApiError(401, "missing_token", "Send a Flex token as 'Authorization: Bearer <token>'")
    return token


def authenticate(change: bool = False) -> Caller:
    """The caller of the current request, by its Flex token; 401 when it has none or a bad one.

    change: the request changes something, so IAM's answer is at most ``CHANGE_TOKEN_CACHE_S`` old.
    """
    return _flex_caller(bearer_token(), CHANGE_TOKEN_CACHE_S if change else TOKEN_CACHE_S)


def authenticate_admin(change: bool = False) -> Caller:
    """An administrator: the ADMIN_TOKEN bearer or a Flex token with the ``admin`` role; 403 for anyone else."""
    token = bearer_token()
    # Before comparing: an address past its refusals must not learn, by a 200 among 429s, that it guessed right.
    _refuse_a_client_guessing_tokens()
    admin_token = current_config().admin_token
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return ADMIN_TOKEN_CALLER
    caller = _flex_caller(token, CHANGE_TOKEN_CACHE_S if change else TOKEN_CACHE_S)
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


def client_address() -> str:
    """The address of the client: the TCP peer, or, behind a proxy that appends it to X-Forwarded-For (Heroku's
    router; ``TRUST_X_FORWARDED_FOR``), that header's last address. The ones before it are whatever the client
    sent, so they are never read."""
    if current_config().trust_forwarded_for:
        forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:MAX_CLIENT_ADDRESS]
    return request.remote_addr or "unknown"


def could_be_a_flex_token(token: str) -> bool:
    """False for a bearer that certainly is no Flex token, so that IAM is not asked about it.

    Only what no token Twilio or the simulator mints can look like is refused: a length outside 32 to 8192, a
    character outside base64url's and the dot, or, in a dotted token, other than three or five segments or a
    first segment that is not a JOSE header (a base64url JSON object with an ``alg``). A token without dots
    passes: it is the simulator's shape.
    """
    if not MIN_FLEX_TOKEN_LENGTH <= len(token) <= MAX_FLEX_TOKEN_LENGTH or not FLEX_TOKEN_CHARACTERS.fullmatch(token):
        return False
    if "." not in token:
        return True
    segments = token.split(".")
    return len(segments) in JOSE_SEGMENTS and _is_jose_header(segments[0])


def _is_jose_header(segment: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # not base64, not UTF-8, not JSON, or nested past the parser's depth
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


def _flex_caller(token: str, max_age_s: float) -> Caller:
    if not could_be_a_flex_token(token):
        _count_token_refusal()
        raise ApiError(401, "invalid_token", "That is not a Flex token: send the agent's Flex token as "
                                             "'Authorization: Bearer <token>'")
    if _is_batons_own_secret(token):
        _count_token_refusal()
        raise ApiError(401, "invalid_token", "Baton's own tokens are not Flex tokens: send the agent's Flex token")
    store = current_store()
    key = hashlib.sha256(token.encode()).hexdigest()
    info = store.cached_token(key)
    if info is None:
        _refuse_a_client_guessing_tokens()
        info = _ask_iam(token, key)
    elif info["valid"] and time.time() - info.get("checked_at", 0) > max_age_s:
        info = _ask_iam(token, key)
    if not info["valid"]:
        raise ApiError(401, "invalid_token", "The Flex token is not valid: it is unknown or has expired")
    return Caller(info["worker_sid"], info["identity"], tuple(info["roles"]))


def _is_batons_own_secret(token: str) -> bool:
    """The token is one of Baton's own secrets, which are never sent to Twilio."""
    config = current_config()
    own = (config.admin_token, config.metrics_token, config.secret_key, config.summary_llm_api_key)
    return any(secret and hmac.compare_digest(token.encode(), secret.encode()) for secret in own)


def _refuse_a_client_guessing_tokens() -> None:
    """429 ``rate_limited``, with ``Retry-After``, for a client whose tokens were refused too often in this window."""
    refused, remaining_s = current_store().counted_requests(_token_refusals_subject())
    if refused >= TOKEN_REFUSALS_PER_CLIENT:
        retry_after = max(1, math.ceil(remaining_s))
        raise ApiError(429, "rate_limited", f"Too many tokens that are not valid from this address: at most "
                                            f"{TOKEN_REFUSALS_PER_CLIENT} every {TOKEN_REFUSAL_WINDOW_S} s; try again "
                                            f"in {retry_after} s", headers={"Retry-After": str(retry_after)})


def _token_refusals_subject() -> str:
    return f"token-refusals:{client_address()}"


def _count_token_refusal() -> None:
    refused, remaining_s = current_store().count_request(_token_refusals_subject(), TOKEN_REFUSAL_WINDOW_S)
    if refused == TOKEN_REFUSALS_PER_CLIENT:  # once a window, however many follow
        log.warning("auth: %d tokens refused from %s within %d s: its next ones are refused without asking IAM for "
                    "%d s", refused, client_address(), TOKEN_REFUSAL_WINDOW_S, math.ceil(remaining_s))


def _ask_iam(token: str, key: str) -> dict[str, Any]:
    """IAM's answer for ``token``, cached under ``key``; a refusal is counted against the client's address."""
    now = datetime.now(timezone.utc)
    answer = current_gateway().validate_flex_token(token)
    info = _token_info(answer, now.timestamp())
    current_store().cache_token(key, info, cache_seconds(answer, now))
    if not answer.valid:
        _count_token_refusal()
    return info


def _token_info(answer: FlexToken, checked_at: float) -> dict[str, Any]:
    return {"valid": answer.valid, "worker_sid": answer.worker_sid, "identity": answer.identity,
            "roles": list(answer.roles), "checked_at": checked_at}


def cache_seconds(answer: FlexToken, now: datetime) -> int:
    """How long IAM's ``answer`` may be reused: whole seconds, so never past the token's expiry."""
    if not answer.valid:
        return INVALID_TOKEN_CACHE_S
    if answer.expires_at is None:  # IAM always says; without it, nothing bounds the cache safely
        return 0
    return min(TOKEN_CACHE_S, int((answer.expires_at - now).total_seconds()))
