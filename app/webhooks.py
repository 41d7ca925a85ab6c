"""Twilio's webhooks: verified, validated, deduplicated and enqueued in milliseconds; no Twilio call.

Most TaskRouter events of a Flex workspace are about tasks that are not transfers. Whether an
event is about a Baton transfer shows in its ``TaskAttributes`` (the new task of a transfer carries
``{"transfer": {"id": …}}``, design.md §4), so those other events are answered without touching Redis.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request
from twilio.request_validator import RequestValidator

from app import current_celery, current_config, current_store
from app.errors import ApiError
from app.schemas import ConversationEventSchema, TaskRouterEventSchema, load_object
from workers.celery_app import CONVERSATION_EVENT, TASKROUTER_EVENT, send_job

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# The events of a transfer's new task that move the transfer; every other event is acknowledged and dropped.
TRANSFER_EVENTS = frozenset({
    "reservation.created",
    "reservation.accepted",
    "reservation.rejected",
    "reservation.timeout",
    "task.canceled",
    "task.deleted",
    "task.system-deleted",
    "workflow.timeout",
    "task-queue.entered",
})
# What the worker needs of an event; the rest (attributes of the task and the worker) stays out of the broker.
FORWARDED_FIELDS = ("EventType", "Sid", "TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "TaskCanceledReason",
                    "TimestampMs")

# What the worker needs of a Conversations event.
CONVERSATION_FIELDS = ("EventType", "ConversationSid", "StateTo", "ParticipantSid", "Identity",
                       "MessagingBinding.Address")

_taskrouter_schema = TaskRouterEventSchema()
_conversation_schema = ConversationEventSchema()


@blueprint.post("/taskrouter")
def taskrouter_event():
    """A TaskRouter event callback: 204 for every valid event; one about a transfer is enqueued once."""
    _verify_signature()
    event = load_object(_taskrouter_schema, request.form)
    transfer_id = transfer_id_of(event.get("TaskAttributes")) if event["EventType"] in TRANSFER_EVENTS else None
    if transfer_id is not None and current_store().claim_event(event["Sid"]):
        fields = {name: event[name] for name in FORWARDED_FIELDS if name in event}
        try:
            send_job(current_celery(), TASKROUTER_EVENT, transfer_id, fields)
        except Exception:
            # Not enqueued: answer 5xx (below) so Twilio sends it again, and let that copy through.
            current_store().release_event(event["Sid"])
            raise
    # TaskRouter's event reference asks for exactly this answer.
    return Response(status=204, content_type="application/json")


@blueprint.post("/conversations")
def conversation_event():
    """A Conversations post-event webhook: 200 ``{}`` for every valid event; one that can end a
    transfer in progress (the conversation closed, someone left) is enqueued for each such transfer."""
    _verify_signature()
    event = load_object(_conversation_schema, request.form)
    if _may_end_a_transfer(event):
        fields = {name: request.form[name] for name in CONVERSATION_FIELDS if request.form.get(name)}
        for transfer_id in current_store().active_transfers_of_conversation(event["ConversationSid"]):
            # Not deduplicated: Conversations events carry no event sid, and these two are idempotent.
            send_job(current_celery(), CONVERSATION_EVENT, transfer_id, fields)
    return jsonify({})


def _may_end_a_transfer(event: dict[str, str]) -> bool:
    if not event.get("ConversationSid"):
        return False
    return event["EventType"] == "onParticipantRemoved" or (
        event["EventType"] == "onConversationStateUpdated" and event.get("StateTo") == "closed")


def transfer_id_of(task_attributes: str | None) -> str | None:
    """The id of the Baton transfer whose new task has these attributes, or None for any other task."""
    try:
        attributes = json.loads(task_attributes or "null")
    except ValueError:
        return None
    transfer = attributes.get("transfer") if isinstance(attributes, dict) else None
    transfer_id = transfer.get("id") if isinstance(transfer, dict) else None
    return transfer_id if isinstance(transfer_id, str) and transfer_id else None


def _verify_signature() -> None:
    """403 unless ``X-Twilio-Signature`` signs the URL Twilio called and the form it posted."""
    config = current_config()
    signature = request.headers.get("X-Twilio-Signature")
    # Twilio signs the public URL it was given; behind TLS termination and proxies request.url differs.
    path = request.full_path if request.query_string else request.path
    if not signature or not RequestValidator(config.twilio_auth_token).validate(
            config.public_base_url + path, request.form, signature):
        raise ApiError(403, "invalid_signature", "X-Twilio-Signature is missing or does not match the request")
