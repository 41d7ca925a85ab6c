"""Twilio's webhooks: verified, validated, deduplicated and delivered in milliseconds; no Twilio call.

Most TaskRouter events of a Flex workspace are about tasks that are not transfers. Whether an
event is about a Baton transfer shows in its ``TaskAttributes`` (the new task of a transfer carries
``{"transfer": {"id": …}}``, docs/contracts.md §2.2), so those other events are answered without touching Redis.

TaskRouter's events come by the workspace's callback (``/webhooks/taskrouter``, a signed form per
event), by an Event Streams webhook sink (``/webhooks/event-streams``, a JSON array of CloudEvents,
``baton.infrastructure.eventstreams``), or both. A CloudEvent is translated into the callback's fields, and from
there both paths are one: the same checks, the same dedupe key (TaskRouter's event sid), the same inbox.

An event about a transfer goes into that transfer's inbox in Redis, and a job to read the inbox is enqueued only
when none is scheduled (waiting or running): the events of one transfer that arrive together (a rejection and
TaskRouter's next offer, a few milliseconds apart) are applied by one job, under one lock, with one save.

Which event types matter, and what the engine makes of them, is ``baton.domain.twilio_events``'s table; a type
in neither its handled nor its ignored lists is acknowledged like an ignored one, and logged. Signatures
are twilio's ``RequestValidator``'s verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlparse

from celery import Celery
from flask import Blueprint, Response, jsonify, request
from twilio.request_validator import RequestValidator, add_port, remove_port
from werkzeug.datastructures import MultiDict

from app import current_celery, current_config, current_store
from app.errors import ApiError
from app.schemas import ConversationEventSchema, TaskRouterEventSchema, json_object, load_object
from app.telemetry import log_at_debug
from baton.domain.twilio_events import (
    CONVERSATION_FIELDS,
    CONVERSATIONS,
    CONVERSATIONS_HANDLERS,
    IGNORED_CONVERSATIONS_EVENTS,
    IGNORED_TASKROUTER_EVENTS,
    TASKROUTER,
    TRANSFER_EVENTS,
    event_from_conversations,
)
from baton.infrastructure import eventstreams, logs
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store
from workers.celery_app import TRANSFER_INBOX, send_job

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# What the worker needs of an event; the rest (attributes of the task and the worker) stays out of the broker.
FORWARDED_FIELDS = ("EventType", "Sid", "TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "TaskCanceledReason",
                    "TimestampMs")

# Twilio adds this header to a webhook that a Webhook Rule signs with a SharedKey (``key=…,algorithm=…``)
# instead of the auth token (twilio's RequestValidator reads its algorithm, twilio-node's middleware then
# wants the SharedKey's secret). Baton is given no such secret: it cannot verify these requests.
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

_taskrouter_schema = TaskRouterEventSchema()
_conversation_schema = ConversationEventSchema()
# The fields the schema loads (each under its own name).
TASKROUTER_FIELDS = tuple(_taskrouter_schema.fields)


@blueprint.post("/taskrouter")
def taskrouter_event():
    """A TaskRouter event callback: 204 for every valid event; one about a transfer is delivered once."""
    event = taskrouter_fields(signed_fields())
    transfer_id = transfer_of(event)
    logs.bind(event_sid=event["Sid"], task_sid=event.get("TaskSid"), transfer_id=transfer_id)
    if transfer_id is not None:
        deliver_taskrouter_event(current_store(), current_celery(), transfer_id, event)
    else:
        log_at_debug()
    # TaskRouter's event reference asks for exactly this answer.
    return Response(status=204, content_type="application/json")


def transfer_of(event: Mapping[str, Any]) -> str | None:
    """The transfer a TaskRouter event (the callback's fields) moves, or None: no Redis call, no parsing of
    attributes that cannot name a transfer."""
    event_type = event["EventType"]
    if event_type in TRANSFER_EVENTS:
        return transfer_id_of(event.get("TaskAttributes"))
    if event_type not in IGNORED_TASKROUTER_EVENTS:
        log.info("TaskRouter event type %r is neither handled nor ignored in baton.domain.twilio_events: dropped",
                 event_type)
    return None


def deliver_taskrouter_event(store: Store, celery: Celery, transfer_id: str, event: Mapping[str, Any]) -> bool:
    """Deliver a transfer's TaskRouter event once, whichever path brought it (dedupe on its ``Sid``); False for
    a copy already delivered. Raises when its job cannot be enqueued, the claim released for the copy Twilio sends
    again."""
    fields = {name: event[name] for name in FORWARDED_FIELDS if name in event}
    return deliver(store, celery, event["Sid"], [transfer_id], {"source": TASKROUTER, "fields": fields})


def deliver(store: Store, celery: Celery, dedupe_key: str, transfer_ids: list[str], delivery: dict[str, Any]) -> bool:
    """Put an event in the inbox of each transfer it is about, once, and enqueue a job for each inbox that has
    none waiting: the events of a transfer that arrive together are applied by one job. False for a duplicate."""
    # The worker logs the event under the request id of the webhook that brought it, whichever job applies it.
    unscheduled = store.deliver_event(dedupe_key, transfer_ids, {**delivery, "request_id": logs.bound("request_id")})
    if unscheduled is None:
        return False
    try:
        for transfer_id in unscheduled:
            send_job(celery, TRANSFER_INBOX, transfer_id)
    except Exception:
        # Not enqueued: answer 5xx so Twilio sends it again, and let that copy through.
        store.undeliver_event(dedupe_key, unscheduled)
        raise
    return True


@blueprint.post("/event-streams")
def event_streams_delivery():
    """An Event Streams webhook sink's delivery: a JSON array of CloudEvents (or one), answered 200 at once.

    Authenticated by the sink URL's credentials (HTTP Basic, 401 otherwise) and, when Twilio sends one,
    X-Twilio-Signature (403 when it does not match). Each TaskRouter event is translated into the callback's
    fields and handled as the callback handles it; a malformed event or one of another product is skipped
    and the rest delivered (sending the batch again would not mend it). Only a failure to enqueue answers
    5xx: Twilio then sends the whole batch again, and the events delivered before are deduplicated. The answer's
    ``enqueued`` counts the events delivered to a transfer's inbox.
    """
    config = current_config()
    body = request.get_data()
    authenticate_sink(config, body)
    try:
        events = eventstreams.cloud_events(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "The body must be a JSON array of CloudEvents") from exc
    enqueued = duplicates = malformed = ignored = 0
    for index, raw in enumerate(events):
        try:
            event = eventstreams.read_event(raw)
        except eventstreams.MalformedEvent as exc:
            malformed += 1
            log.warning("Event Streams: event %s of the batch skipped: %s", index, exc)
            continue
        if event.kind == "test":
            eventstreams.record_sink_test(current_store(), event.test_id, time.time())
            log.info("Event Streams: test event %s received", event.test_id)
            continue
        transfer_id = transfer_of(event.fields) if event.kind == "taskrouter" else None
        if transfer_id is None:
            ignored += 1
        elif deliver_taskrouter_event(current_store(), current_celery(), transfer_id, event.fields):
            enqueued += 1
            logs.bind(event_sid=event.fields["Sid"], task_sid=event.fields.get("TaskSid"), transfer_id=transfer_id)
        else:
            duplicates += 1
    if not (enqueued or duplicates or malformed):
        log_at_debug()
    return jsonify({"received": len(events), "enqueued": enqueued, "duplicates": duplicates, "ignored": ignored,
                    "malformed": malformed})


def authenticate_sink(config: Config, body: bytes) -> None:
    """The sink's credentials, compared in constant time (401), and Twilio's signature where sent (403).

    Which URL Twilio signs, and how, is not documented for Event Streams (docs/twilio-behaviour.md §14):
    the signature is accepted under the JSON-body scheme of Twilio's webhook security page (a
    ``bodySHA256`` query parameter, the URL signed) and with the URL followed by the raw body signed,
    each with the public URL with or without the sink's credentials in it.
    """
    username, password = eventstreams.sink_credentials(config.twilio_auth_token, config.public_base_url)
    auth = request.authorization
    given_user = (auth.username or "") if auth is not None and auth.type == "basic" else ""
    given_password = (auth.password or "") if auth is not None and auth.type == "basic" else ""
    # Both compared, whatever the first gives: the time taken says nothing of either.
    user_ok = _same(username, given_user)
    password_ok = _same(password, given_password)
    if not (user_ok and password_ok):
        raise ApiError(401, "invalid_credentials", "The Event Streams sink's credentials are missing or wrong",
                       headers={"WWW-Authenticate": 'Basic realm="Baton Event Streams"'})
    signature = request.headers.get("X-Twilio-Signature")
    if signature is None:
        return
    refuse_shared_key_signatures()
    url = config.public_base_url + (request.full_path if request.query_string else request.path)
    candidates = (url, eventstreams.with_userinfo(url, username, password))
    if "bodySHA256" in request.args:
        signed = any(signature_matches(config.twilio_auth_token, candidate, body, signature)
                     for candidate in candidates)
    else:
        text = body.decode("utf-8", errors="replace")
        signed = any(url_and_body_signature_matches(config.twilio_auth_token, candidate, text, signature)
                     for candidate in candidates)
    if not signed:
        raise ApiError(403, "invalid_signature", "X-Twilio-Signature does not match the request")


@blueprint.post("/conversations")
def conversation_event():
    """A Conversations post-event webhook: 200 ``{}`` for every valid event; one that can end a
    transfer in progress (the conversation closed, someone left) is delivered to each such transfer's inbox."""
    signed = signed_fields()
    event = load_object(_conversation_schema, signed)
    if event["EventType"] not in CONVERSATIONS_HANDLERS and event["EventType"] not in IGNORED_CONVERSATIONS_EVENTS:
        log.info("Conversations event type %r is neither handled nor ignored in baton.domain.twilio_events: dropped",
                 event["EventType"])
    # Only an event the engine would act on is worth a Redis call; it is about the conversation it names.
    if not event.get("ConversationSid") or event_from_conversations(event) is None:
        return jsonify({})
    store = current_store()
    transfer_ids = store.active_transfers_of_conversation(event["ConversationSid"])
    # Every one of these fields is a string: the schema checked them.
    fields = {name: signed[name] for name in CONVERSATION_FIELDS if signed.get(name)}
    if transfer_ids:
        deliver(store, current_celery(), conversation_event_key(fields), transfer_ids,
                {"source": CONVERSATIONS, "fields": fields})
    return jsonify({})


def conversation_event_key(fields: Mapping[str, str]) -> str:
    """The deduplication key of a Conversations event, from its ``CONVERSATION_FIELDS``."""
    identity = "|".join(fields.get(name, "") for name in CONVERSATION_FIELDS)
    return "conversations:" + hashlib.sha256(identity.encode()).hexdigest()


def taskrouter_fields(signed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a TaskRouter event that Baton reads, as ``TaskRouterEventSchema`` loads them; 400 otherwise.

    Every event comes through here, most of them not about a transfer: a form (what Twilio sends)
    holds only strings, so the schema's checks come down to ``EventType`` and ``Sid`` being there
    and not empty, and it is read directly, at a tenth of marshmallow's cost. A JSON body, or a form
    that fails those checks, goes through the schema, which also words the 400.
    """
    if isinstance(signed, MultiDict) and signed.get("EventType") and signed.get("Sid"):
        return {name: signed[name] for name in TASKROUTER_FIELDS if name in signed}
    return load_object(_taskrouter_schema, signed)


def transfer_id_of(task_attributes: str | None) -> str | None:
    """The id of the Baton transfer whose new task has these attributes, or None for any other task."""
    # Most tasks are not transfers: their attributes are not parsed at all. A transfer's new task has
    # the key "transfer", and JSON writers (Baton's, TaskRouter's) write such a key as it is, never
    # with escaped letters, so text without it cannot hold a transfer id.
    if not task_attributes or '"transfer"' not in task_attributes:
        return None
    try:
        attributes = json.loads(task_attributes)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply (any agent may set attributes)
        return None
    transfer = attributes.get("transfer") if isinstance(attributes, dict) else None
    transfer_id = transfer.get("id") if isinstance(transfer, dict) else None
    return transfer_id if isinstance(transfer_id, str) and transfer_id else None


def signed_fields() -> Mapping[str, Any]:
    """The fields of the event, once ``X-Twilio-Signature`` proves Twilio sent them; 403 otherwise.

    A form is signed with its parameters. A JSON body is signed through the ``bodySHA256`` query
    parameter Twilio adds to the URL (Twilio's webhook security page); its object's members are the event's fields.
    """
    config = current_config()
    refuse_shared_key_signatures()
    # Twilio signs the public URL it was given; behind TLS termination and proxies request.url differs.
    url = config.public_base_url + (request.full_path if request.query_string else request.path)
    signature = request.headers.get("X-Twilio-Signature", "")
    if "bodySHA256" in request.args:
        body = request.get_data()
        if signature_matches(config.twilio_auth_token, url, body, signature):
            try:
                return json_object(json.loads(body))
            except (ValueError, RecursionError):
                raise ApiError(400, "invalid_json", "The body must be a JSON object") from None
    # A body in any other form than a form is covered by no signature: its content is not trusted.
    elif not request.is_json and signature_matches(config.twilio_auth_token, url, request.form, signature):
        return request.form
    raise ApiError(403, "invalid_signature", "X-Twilio-Signature is missing or does not match the request")


def refuse_shared_key_signatures() -> None:
    """403 for a request signed with a SharedKey (``X-Twilio-Webhooks-Signature-Settings``): Baton verifies
    signatures made with the auth token only, and says so rather than calling the signature wrong."""
    settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if settings is not None:
        log.warning("%s: a Webhook Rule signs this URL with a SharedKey (%s); Baton verifies only the auth "
                    "token's signature", request.path, settings)
        raise ApiError(403, "invalid_signature", "The request is signed with a SharedKey "
                       f"({SIGNATURE_SETTINGS_HEADER}), whose secret Baton is not given: remove the Webhook Rule "
                       "that matches Baton's URL, so that Twilio signs it with the auth token")


def signature_matches(auth_token: str, url: str, params: Mapping[str, Any] | bytes, signature: str) -> bool:
    """Whether ``signature`` is Twilio's for ``params`` (a form, or a raw body) posted to ``url``.

    twilio's ``RequestValidator.validate`` decides: the URL is tried without and with its default port
    (Twilio signs either way); a raw body must hash (SHA-256 of its UTF-8, hex) to the URL's ``bodySHA256``
    parameter, and the URL alone is then signed.
    """
    if isinstance(params, bytes):
        # The validator reads a str as a body only when the URL claims its hash; a body whose URL does not is
        # covered by no signature. Twilio signs text: a body that is not UTF-8 is not one it sent.
        if not parse_qs(urlparse(url).query).get("bodySHA256"):
            return False
        try:
            return RequestValidator(auth_token).validate(url, params.decode("utf-8"), signature)
        except UnicodeDecodeError:
            return False
    return RequestValidator(auth_token).validate(url, params, signature)


def url_and_body_signature_matches(auth_token: str, url: str, body: str, signature: str) -> bool:
    """Whether ``signature`` is the HMAC-SHA1 of ``url`` followed by the raw ``body``: how some public code
    reads Event Streams' signature (docs/twilio-behaviour.md §14); the URL with and without its default port.
    The SDK signs the text, as it signs a URL without parameters."""
    validator, parsed = RequestValidator(auth_token), urlparse(url)
    matches = [_same(validator.compute_signature(candidate + body, {}), signature)
               for candidate in (remove_port(parsed), add_port(parsed))]
    return any(matches)


def _same(expected: str, given: str) -> bool:
    # compare_digest takes str only when it is ASCII; a header may hold any Latin-1 character.
    return hmac.compare_digest(expected.encode(), given.encode())
