"""Event Streams: TaskRouter's events through a webhook sink, instead of (or besides) the workspace's callback.

A workspace has one ``EventCallbackUrl``, often another application's; Twilio Event Streams sends the
same events (``com.twilio.taskrouter.*``) to any number of sinks. ``baton setup --events streams``
gives Baton a webhook sink on ``PUBLIC_BASE_URL/webhooks/event-streams`` and a subscription to
exactly ``SUBSCRIBED_TYPES``; ``app/webhooks.py`` receives the batches. This module is what both
need, with no I/O of its own but Redis for the sink's test events:

- The sink's credentials: HTTP Basic, carried in the sink's URL (Twilio's webhook-sink quickstart).
  They are derived, never stored: the password is an HMAC of ``PUBLIC_BASE_URL`` keyed with
  ``TWILIO_AUTH_TOKEN``, so setup and every web process compute the same, a second deployment on the
  account (another public URL) gets its own, and rotating the auth token rotates them (run
  ``baton setup`` again: it replaces the sink).
- The one translation from a CloudEvent to the callback's fields (``read_event``): the webhook then
  handles both paths alike, and the engine cannot tell which one an event came by.
- The record of the last test event received (``POST /Sinks/{DG}/Test``), which ``baton setup`` and
  ``baton doctor`` wait for.

The shape of ``data`` (docs/twilio-behaviour.md §14): Twilio's event-type pages show an envelope
(``sid``, ``name``, ``account_sid``, ``timestamp``, ``group``, ``product_name``, ``publisher``, …,
``payload_type``) whose ``payload`` holds the event's snake_case fields (``sid`` EV…, ``eventtype``,
``task_sid``, ``task_attributes`` as JSON text, ``reservation_sid``, ``worker_sid``,
``task_queue_sid``, ``task_canceled_reason``, ``timestamp``), which is also how public handlers
read them (``event[0].data.payload``). Baton reads that, a ``payload`` sent as JSON text, and the
same fields directly in ``data``. The event's ``sid`` is TaskRouter's event sid, the ``Sid`` of the
callback: it is the dedupe key of both paths, so an event that arrives both ways is handled once.
The CloudEvents ``id`` is another identifier (``NO…`` in Twilio's examples), used only when no
``sid`` is there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from baton.domain.twilio_events import TRANSFER_EVENTS
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store

SINK_PATH = "/webhooks/event-streams"
SINK_USERNAME = "baton"
SINK_DESCRIPTION = "Baton: TaskRouter events of transfers"
SUBSCRIPTION_DESCRIPTION = "Baton: the TaskRouter events a transfer moves on"
TASKROUTER_TYPE_PREFIX = "com.twilio.taskrouter."
EVENT_STREAMS_TYPE_PREFIX = "com.twilio.eventstreams."
# Exactly the TaskRouter events Baton acts on, as Event Streams names them.
SUBSCRIBED_TYPES = tuple(sorted(TASKROUTER_TYPE_PREFIX + event_type for event_type in TRANSFER_EVENTS))
# Twilio waits this long for a sink's answer (webhook sink docs); Baton answers in milliseconds.
SINK_TIMEOUT_S = 5.0
SINK_TEST_KEY = "eventstreams:test"
SINK_TEST_TTL_S = 24 * 3600
# How far apart the clocks of the process waiting for a test event and the web process receiving it may be.
CLOCK_SKEW_S = 2.0

# Payload fields Baton reads, and the callback's names for them.
_FIELDS = {
    "task_sid": "TaskSid",
    "task_attributes": "TaskAttributes",
    "reservation_sid": "ReservationSid",
    "worker_sid": "WorkerSid",
    "task_queue_sid": "TaskQueueSid",
    "task_canceled_reason": "TaskCanceledReason",
}


class MalformedEvent(ValueError):
    """A CloudEvent Baton cannot read: skipped, the rest of its batch delivered."""


# The sink's credentials


def sink_credentials(auth_token: str, public_base_url: str) -> tuple[str, str]:
    """The user name and password of this deployment's sink (URL-safe: hex digits)."""
    digest = hmac.new(auth_token.encode(), f"baton event streams sink\n{public_base_url}".encode(), hashlib.sha256)
    return SINK_USERNAME, digest.hexdigest()[:40]


def sink_url(public_base_url: str) -> str:
    """Where the sink delivers, without credentials: ``PUBLIC_BASE_URL/webhooks/event-streams``."""
    return public_base_url + SINK_PATH


def sink_destination(config: Config) -> str:
    """The sink's ``destination``: its URL with the credentials in the user info."""
    return with_userinfo(sink_url(config.public_base_url),
                         *sink_credentials(config.twilio_auth_token, config.public_base_url))


def with_userinfo(url: str, username: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"))


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def userinfo(url: str) -> tuple[str | None, str | None]:
    """The user name and password in ``url`` (None where absent)."""
    parts = urlsplit(url)
    return parts.username, parts.password


# The translation


@dataclass(frozen=True)
class StreamEvent:
    """One CloudEvent as Baton reads it.

    kind: ``taskrouter`` (``fields`` are the callback's: ``EventType``, ``Sid``, ``TaskSid``,
    ``TaskAttributes``, …), ``test`` (a sink's test event: ``test_id``), or ``other`` (a type Baton
    does not read, e.g. another product's events on the same sink).
    """

    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    test_id: str | None = None


def cloud_events(body: Any) -> list[Any]:
    """The CloudEvents of a delivery: a JSON array (a batch), or one object (a sink without batching)."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    raise MalformedEvent("the body is neither a JSON array of CloudEvents nor one CloudEvent")


def read_event(event: Any) -> StreamEvent:
    """The TaskRouter event (or test event) a CloudEvent carries; MalformedEvent when it cannot be read."""
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedEvent("no type")
    data = event.get("data")
    if kind.startswith(EVENT_STREAMS_TYPE_PREFIX):
        test_id = data.get("test_id") if isinstance(data, dict) else None
        return StreamEvent("test", test_id=test_id) if isinstance(test_id, str) and test_id else StreamEvent("other")
    if not kind.startswith(TASKROUTER_TYPE_PREFIX):
        return StreamEvent("other")
    if not isinstance(data, dict):
        raise MalformedEvent(f"{kind}: data is not an object")
    payload = data.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            raise MalformedEvent(f"{kind}: data.payload is not JSON") from None
    source = payload if isinstance(payload, dict) else data
    sid = source.get("sid") or data.get("sid")
    if not isinstance(sid, str) or not sid:
        cloud_event_id = event.get("id")
        if not isinstance(cloud_event_id, str) or not cloud_event_id:
            raise MalformedEvent(f"{kind}: neither an event sid nor a CloudEvents id")
        sid = "cloudevent:" + cloud_event_id
    fields = {"EventType": kind.removeprefix(TASKROUTER_TYPE_PREFIX), "Sid": sid}
    for name, callback_name in _FIELDS.items():
        value = source.get(name)
        if isinstance(value, str):
            fields[callback_name] = value
        elif name == "task_attributes" and isinstance(value, dict):
            fields[callback_name] = json.dumps(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            fields[callback_name] = str(value)
    millis = _epoch_ms(source.get("timestamp")) or _epoch_ms(event.get("time"))
    if millis is not None:
        fields["TimestampMs"] = str(millis)
    return StreamEvent("taskrouter", fields)


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


# The sink's test events, for setup and doctor


def record_sink_test(store: Store, test_id: str, at: float) -> None:
    """Remember the last test event received: its id (Validate's ``TestId``) and when."""
    store.redis.set(store.prefix + SINK_TEST_KEY, json.dumps({"test_id": test_id, "at": at}), ex=SINK_TEST_TTL_S)


def last_sink_test(store: Store) -> tuple[str, float] | None:
    raw = store.redis.get(store.prefix + SINK_TEST_KEY)
    if not raw:
        return None
    try:
        record = json.loads(raw)
        return str(record["test_id"]), float(record["at"])
    except (ValueError, KeyError, TypeError):
        return None


def wait_for_sink_test(store: Store, since: float, timeout_s: float, poll_s: float = 0.1,
                       clock: Callable[[], float] = time.time,
                       sleep: Callable[[float], None] = time.sleep, known: str | None = None) -> str | None:
    """The id of a test event Baton received at ``since`` or later, waiting up to ``timeout_s``; None if none came.

    ``since`` is this machine's clock, the reception time the web process's: CLOCK_SKEW_S of slack. ``known``
    is the id recorded before the test was asked for (``last_sink_test``): that one is not it.
    """
    deadline = clock() + timeout_s
    while True:
        last = last_sink_test(store)
        if last is not None and last[1] >= since - CLOCK_SKEW_S and last[0] != known:
            return last[0]
        if clock() >= deadline:
            return None
        sleep(poll_s)

