"""Helpers for the HTTP edge's tests: Celery's queue as the tests read it, tokens, signed webhooks."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from twilio.request_validator import RequestValidator

from baton.infrastructure.store import celery_queue_lists

PUBLIC_BASE_URL = "https://baton.example.com"
ADMIN_TOKEN = "admin-token-for-the-tests-0123456789abcdef"
# Webhook forms captured from the simulator, beside the edge's tests that post most of them.
FIXTURES = Path(__file__).resolve().parents[1] / "app" / "fixtures"


@dataclass(frozen=True)
class Job:
    """A message in Celery's queue: the task's name, its arguments, and its ETA (set by a countdown)."""

    name: str
    args: list[Any]
    eta: str | None


def queued_jobs(broker: redis.Redis) -> list[Job]:
    """The jobs waiting in Celery's default queue, in the order a worker takes them: by priority, then oldest first."""
    # kombu LPUSHes each message onto the list of the queue's priority; workers pop from its tail.
    messages = [json.loads(raw) for key in celery_queue_lists("celery") for raw in reversed(broker.lrange(key, 0, -1))]
    return [Job(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0], m["headers"].get("eta"))
            for m in messages]


def inbox_of(broker: redis.Redis, transfer_id: str, with_request_ids: bool = False) -> list[dict]:
    """The events waiting in a transfer's inbox (each its ``source`` and ``fields``, and with ``with_request_ids``
    the request id of the webhook that brought it), oldest first, left there."""
    deliveries = [json.loads(raw) for raw in broker.lrange(f"baton:inbox:{transfer_id}", 0, -1)]
    return deliveries if with_request_ids else [without_request_id(delivery) for delivery in deliveries]


def without_request_id(delivery: dict) -> dict:
    return {name: value for name, value in delivery.items() if name != "request_id"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unknown_token() -> str:
    """A token shaped like the simulator's (43 base64url characters) that it never minted: IAM refuses it."""
    return secrets.token_urlsafe(32)


def payload(name: str) -> dict[str, str]:
    """A webhook form captured from the simulator (``fixtures/{name}.json``)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The X-Twilio-Signature Twilio sends with ``params`` posted to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, params)
