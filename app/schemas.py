"""The shapes of the HTTP edge: request bodies, webhook forms and answers, as marshmallow schemas.

A request that does not fit its schema is refused with the first problem found, as a 400
``invalid_request`` naming the field. The settings' schema is ``baton.domain.settings.SettingsSchema``:
the API, the environment and the store share that one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, post_load, validate

from app.errors import ApiError
from baton.domain.transfers import Transfer

MAX_NOTES = 1000
MAX_NAMES = 20
MODES = ("cold", "warm")


class Sid(fields.String):
    """A Twilio sid of one of ``prefixes``, with 32 hex digits in either case; loaded in Twilio's lowercase."""

    def __init__(self, *prefixes: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.prefixes = prefixes
        self.pattern = re.compile(rf"^({'|'.join(prefixes)})[0-9a-fA-F]{{32}}$")

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        sid = super()._deserialize(value, attr, data, **kwargs)
        if not self.pattern.match(sid):
            kinds = " or ".join(self.prefixes)
            raise ValidationError(f"must be a {kinds} sid: the prefix followed by 32 hex digits")
        return sid[:2] + sid[2:].lower()


class Timestamp(fields.Field):
    """Epoch seconds, answered as ISO-8601 UTC with milliseconds (``2026-11-26T10:25:22.764Z``)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Request bodies and queries


class TransferRequestSchema(Schema):
    """``POST /v1/transfers``: unknown fields are refused, so a misspelled option is never ignored."""

    task_sid = Sid("WT", required=True)
    to = Sid("WK", "WQ", "WW", required=True)
    mode = fields.String(load_default="cold", validate=validate.OneOf(MODES))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_NOTES))
    # Only JSON true and false: "no" or "0" as a string would be read as a choice the agent did not make.
    summary = fields.Boolean(load_default=False, truthy={True}, falsy={False})

    @post_load
    def _empty_notes_are_none(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {**data, "notes": data["notes"] or None}


class TransferQuerySchema(Schema):
    """``GET /v1/transfers?task_sid=``: other query parameters (cache busters) are ignored."""

    class Meta:
        unknown = EXCLUDE

    task_sid = Sid("WT", required=True)


class NamesQuerySchema(Schema):
    """``GET /v1/names?sid=WK…&sid=WQ…``: up to ``MAX_NAMES`` sids of workers, queues or workflows."""

    class Meta:
        unknown = EXCLUDE

    sid = fields.List(Sid("WK", "WQ", "WW"), required=True,
                      validate=validate.Length(1, MAX_NAMES, error=f"give 1 to {MAX_NAMES} sids"))


# Webhook forms: Twilio adds fields over time, so fields Baton does not read are dropped, not refused.


class TaskRouterEventSchema(Schema):
    """A TaskRouter event callback (Twilio's TaskRouter event reference), reduced to the fields Baton reads."""

    class Meta:
        unknown = EXCLUDE

    EventType = fields.String(required=True, validate=validate.Length(min=1))
    Sid = fields.String(required=True, validate=validate.Length(min=1))
    TaskSid = fields.String()
    TaskAttributes = fields.String()
    ReservationSid = fields.String()
    WorkerSid = fields.String()
    TaskQueueSid = fields.String()
    TaskCanceledReason = fields.String()
    TimestampMs = fields.String()


class ConversationEventSchema(Schema):
    """A Conversations post-event webhook (Twilio's Conversations webhooks page), reduced to the fields Baton reads."""

    class Meta:
        unknown = EXCLUDE

    EventType = fields.String(required=True, validate=validate.Length(min=1))
    ConversationSid = fields.String()
    ParticipantSid = fields.String()
    StateTo = fields.String()
    StateUpdated = fields.String()
    DateUpdated = fields.String()


# Answers


class TimelineEntrySchema(Schema):
    """One line of a transfer's timeline; details that do not apply are left out."""

    at = Timestamp()
    state = fields.String()
    event = fields.String()
    worker_sid = fields.String()
    reservation_sid = fields.String()
    reason = fields.String()
    code = fields.Integer()

    @post_dump
    def _omit_empty(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class TransferSchema(Schema):
    """A transfer as the API serves it: ``task_sid`` is the task transferred, ``to`` the target asked for."""

    id = fields.String()
    status = fields.String()
    mode = fields.String()
    task_sid = fields.String(attribute="from_task_sid")
    from_worker_sid = fields.String()
    to = fields.String(attribute="target_sid")
    target_type = fields.String()
    route = fields.String()
    queue_sid = fields.String()
    new_task_sid = fields.String()
    conversation_sid = fields.String()
    previous_transfer_id = fields.String()
    earlier_transfers = fields.Integer()
    accepted_worker_sid = fields.String()
    attempt = fields.Integer()
    excluded_workers = fields.List(fields.String())
    notes = fields.String()
    summary_requested = fields.Boolean()
    failure = fields.Method("_failure", metadata={
        "description": "Why the transfer failed (null unless it did)", "type": "object",
        "properties": {"reason": {"type": "string"}, "code": {"type": "integer", "nullable": True}}})
    created_at = Timestamp()
    updated_at = Timestamp()
    timeline = fields.List(fields.Nested(TimelineEntrySchema))
    # Added by the view (baton.infrastructure.names), not read from the transfer.
    names = fields.Dict(keys=fields.String(), values=fields.String(), dump_only=True, metadata={
        "description": "Friendly names of the workers, queues and workflows this transfer mentions, by sid, as "
                       "TaskRouter gives them; a sid without a name now (Twilio unavailable, a deleted worker) is "
                       "absent: show the sid"})

    def _failure(self, transfer: Transfer) -> dict[str, Any] | None:
        if transfer.failure_reason is None and transfer.failure_code is None:
            return None
        return {"reason": transfer.failure_reason, "code": transfer.failure_code}


# Loading


def invalid_request(error: ValidationError) -> ApiError:
    """The 400 for the first problem marshmallow found, naming its field."""
    path: list[str] = []
    messages: Any = error.messages
    while isinstance(messages, (dict, list)):
        if isinstance(messages, dict):
            key, messages = next(iter(messages.items()))
            if key != "_schema":
                path.append(str(key))
        else:
            messages = messages[0]
    field = ".".join(path) or None
    return ApiError(400, "invalid_request", f"{field}: {messages}" if field else str(messages), field)


def json_object(data: Any) -> Mapping[str, Any]:
    """``data`` if it is an object (a decoded JSON body, a form, a query); 400 ``invalid_json`` otherwise."""
    if not isinstance(data, Mapping):
        raise ApiError(400, "invalid_json", "The body must be a JSON object")
    return data


def load_object(schema: Schema, data: Any) -> dict[str, Any]:
    """``data`` loaded by ``schema``; ApiError 400 when it is not an object or does not fit."""
    try:
        return schema.load(json_object(data))
    except ValidationError as exc:
        raise invalid_request(exc) from None
