"""The agent API under ``/v1`` (docs/contracts.md §3.1): start, read and cancel transfers; the admin settings.

Each view authenticates, validates, checks what the caller may do, records and enqueues; the
workers do the rest. The only Twilio calls are the ones that authorize the caller: IAM (cached,
briefly for a request that changes something), and, to start a transfer, the task and its reservations.

An ``Idempotency-Key`` is kept a day with the hash of the request it came with: the same request
again gets the same transfer; another request with the key gets 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError

from app import current_celery, current_config, current_gateway, current_store
from app.auth import Caller, authenticate, authenticate_admin, limit_rate
from app.errors import ApiError
from app.schemas import (
    MAX_NOTES,
    NamesQuerySchema,
    TransferQuerySchema,
    TransferRequestSchema,
    TransferSchema,
    invalid_request,
    json_object,
    load_object,
)
from baton.domain.redaction import redact
from baton.domain.settings import Settings, SettingsSchema, validated_settings
from baton.domain.transfers import (
    ACCEPTED,
    CANCELED,
    COMPLETED,
    FAILED,
    REQUESTED,
    Transfer,
    new_transfer_id,
    start,
    target_type_of,
)
from baton.infrastructure import logs
from baton.infrastructure.names import MAX_LOOKUPS_PER_ANSWER, names_of, sids_of, workflows
from baton.infrastructure.store import Record
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TaskSnapshot, TwilioError
from workers.celery_app import CANCEL_TRANSFER, LEAVE_TRANSFER, NEW_TRANSFER_PRIORITY, RUN_TRANSFER, send_job

log = logging.getLogger(__name__)
blueprint = Blueprint("api", __name__, url_prefix="/v1")

# Reservation statuses of the agent who holds a task, and may transfer it.
HOLDING_STATUSES = ("accepted", "wrapping")
MAX_IDEMPOTENCY_KEY = 200

_request_schema = TransferRequestSchema()
_query_schema = TransferQuerySchema()
_names_query_schema = NamesQuerySchema()
_transfer_schema = TransferSchema()
_settings_schema = SettingsSchema()


@blueprint.post("/transfers")
def create_transfer():
    """Start a transfer of a task the caller holds (or, for a supervisor, any agent's): 202, enqueued."""
    caller = authenticate(change=True)
    limit_rate(caller)
    body = load_object(_request_schema, request.get_json(force=True, silent=True))
    idempotency_key = _idempotency_key()
    settings = _settings()
    _check_allowed(body, settings)
    task_sid, to = body["task_sid"], body["to"]
    task, sender = _task_and_sender(caller, task_sid)
    if to == sender:
        raise ApiError(400, "invalid_request", "to: the agent who holds the task cannot be its target", "to")

    # Redacted before anything keeps them: the record, the new task, the logs.
    notes = redact(body["notes"]) if body["notes"] and settings.redact_pii else body["notes"]
    transfer = Transfer(id=new_transfer_id(), from_task_sid=task_sid, from_worker_sid=sender,
                        target_type=target_type_of(to), target_sid=to, mode=body["mode"], notes=notes,
                        summary_requested=body["summary"], conversation_sid=task.attributes.get("conversationSid"))
    step = start(transfer, now=time.time(), task=dataclasses.asdict(task))
    created = current_store().create(Record(step.transfer, step.actions), idempotency_key,
                                     caller.worker_sid or caller.identity,
                                     deadline=step.transfer.created_at + settings.transfer_timeout_s,
                                     request_hash=_request_hash({**body, "notes": notes}))
    logs.bind(transfer_id=created.transfer.id, task_sid=task_sid)
    if created.key_reused:
        raise ApiError(422, "idempotency_key_reused",
                       f"Idempotency-Key: already used with another request (for transfer {created.transfer.id}); "
                       "send each new request with a new key", "Idempotency-Key")
    if created.conflict:
        raise ApiError(409, "transfer_in_progress",
                       f"Task {task_sid} already has a transfer in progress: {created.transfer.id}")
    # A replay of a transfer still requested enqueues it again: the first request may have been stored but
    # not enqueued (broker away: it got a 503), and running a transfer is idempotent.
    if created.new or created.transfer.status == REQUESTED:
        send_job(current_celery(), RUN_TRANSFER, created.transfer.id, priority=NEW_TRANSFER_PRIORITY)
    # A replay answers exactly as the first request did. Names only as cached: the form asked for the target's
    # (GET /v1/names), and the agent waits for nobody else's; the worker's reads fill in the rest for the polls.
    return _answer(created.transfer, 202, {"Location": f"/v1/transfers/{created.transfer.id}"}, lookups=0)


@blueprint.get("/transfers/<transfer_id>")
def get_transfer(transfer_id: str):
    """A transfer and its timeline, for its sender, the agent it was offered to, or a supervisor."""
    caller = authenticate()
    transfer = _transfer(transfer_id)
    if not _may_read(caller, transfer):
        raise ApiError(403, "not_your_transfer", "Only the agents of this transfer or a supervisor may read it")
    return _answer(transfer, 200)


@blueprint.get("/transfers")
def list_transfers():
    """The transfers from or to a task that the caller may read, oldest first."""
    caller = authenticate()
    query = load_object(_query_schema, request.args)
    transfers = [transfer for transfer in current_store().transfers_of_task(query["task_sid"])
                 if _may_read(caller, transfer)]
    names = names_of([sid for transfer in transfers for sid in sids_of(transfer)], current_store(), current_gateway())
    return jsonify(transfers=[_with_names(transfer, names) for transfer in transfers])


@blueprint.get("/names")
def names():
    """Friendly names of workers, queues and workflows, for a form that has only their sids."""
    authenticate()
    query = load_object(_names_query_schema, {"sid": request.args.getlist("sid")})
    return jsonify(names=names_of(query["sid"], current_store(), current_gateway()))


@blueprint.get("/transfer-options")
def transfer_options():
    """What an agent's transfer form may offer: the administrator's switches (read-only) and the workflows."""
    authenticate()
    settings = _settings()
    try:
        listed = [{"sid": sid, "name": name} for sid, name in
                  workflows(current_store(), current_gateway(), current_config().transfer_workflow_sid)]
    except TwilioError as exc:
        log.warning("transfer options: the workflows could not be listed (%s)", exc)
        listed = None
    return jsonify(transfers_enabled=settings.transfers_enabled, notes_enabled=settings.notes_enabled,
                   summary_enabled=settings.summary_enabled, notes_max_length=MAX_NOTES, workflows=listed)


@blueprint.post("/transfers/<transfer_id>/cancel")
def cancel_transfer(transfer_id: str):
    """Ask for a transfer not yet accepted to be canceled (the sender keeps the customer): 202."""
    caller = authenticate(change=True)
    limit_rate(caller)
    transfer = _transfer(transfer_id)
    if not (caller.is_privileged or caller.worker_sid == transfer.from_worker_sid):
        raise ApiError(403, "not_your_transfer", "Only the sender of this transfer or a supervisor may cancel it")
    if transfer.status in (ACCEPTED, COMPLETED):
        raise ApiError(409, "already_accepted", f"Transfer {transfer.id} was already accepted")
    if transfer.status == FAILED:
        raise ApiError(409, "already_finished", f"Transfer {transfer.id} has already failed")
    if transfer.status != CANCELED:
        send_job(current_celery(), CANCEL_TRANSFER, transfer.id, caller.worker_sid)
    return _answer(transfer, 202)


@blueprint.post("/transfers/<transfer_id>/leave")
def leave_transfer(transfer_id: str):
    """The sender of an accepted warm transfer leaves the conversation to the new agent: 202."""
    caller = authenticate(change=True)
    limit_rate(caller)
    transfer = _transfer(transfer_id)
    if not (caller.is_privileged or caller.worker_sid == transfer.from_worker_sid):
        raise ApiError(403, "not_your_transfer", "Only the sender of this transfer or a supervisor may leave it")
    if transfer.mode != "warm":
        raise ApiError(409, "not_warm", f"Transfer {transfer.id} is a cold transfer: its sender leaves on acceptance")
    if transfer.status == COMPLETED:
        return _answer(transfer, 202)
    if transfer.status != ACCEPTED:
        raise ApiError(409, "not_accepted", f"Transfer {transfer.id} is {transfer.status}: the sender can leave "
                                            "only once another agent has accepted it")
    send_job(current_celery(), LEAVE_TRANSFER, transfer.id, caller.worker_sid)
    return _answer(transfer, 202)


@blueprint.get("/settings")
def get_settings():
    """The settings in force (admin)."""
    authenticate_admin()
    return jsonify(_settings_schema.dump(_settings()))


@blueprint.patch("/settings")
def patch_settings():
    """Change some settings (admin): the fields given are validated with the others, then stored."""
    authenticate_admin(change=True)
    changes = json_object(request.get_json(force=True, silent=True))
    try:
        settings = validated_settings(changes, _settings())
    except ValidationError as exc:
        raise invalid_request(exc) from None
    current_store().save_settings(settings)
    return jsonify(_settings_schema.dump(settings))


@blueprint.after_request
def _allow_the_flex_ui(response: Response) -> Response:
    """CORS: a Flex UI plugin calls this API from the Flex origin (``CORS_ORIGINS``) with the agent's token.

    Preflights are answered by Flask's automatic OPTIONS, which this also completes; no cookie is involved.
    """
    origin = request.headers.get("Origin")
    if origin and origin in current_config().cors_origins:
        response.headers.update({
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, PATCH",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-Request-ID",
            "Access-Control-Expose-Headers": "Location, Retry-After, X-Request-ID",
            "Access-Control-Max-Age": "600",
        })
    response.vary.add("Origin")
    return response


def _settings() -> Settings:
    return current_store().settings(current_config().settings)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ApiError(400, "invalid_request",
                       f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters", "Idempotency-Key")
    return key


def _request_hash(body: dict[str, Any]) -> str:
    """What a transfer request asked, as Baton keeps it (validated, notes redacted), hashed: the same for a retry."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_allowed(body: dict[str, Any], settings: Settings) -> None:
    """422 for a request the administrator's settings do not allow."""
    if not settings.transfers_enabled:
        raise ApiError(422, "transfers_disabled", "Transfers are turned off by an administrator")
    if body["notes"] and not settings.notes_enabled:
        raise ApiError(422, "notes_disabled", "Transfer notes are turned off: send the transfer without notes",
                       "notes")
    if body["summary"] and not settings.summary_enabled:
        raise ApiError(422, "summary_disabled", "Transfer summaries are turned off: send the transfer without one",
                       "summary")


def _task_and_sender(caller: Caller, task_sid: str) -> tuple[TaskSnapshot, str]:
    """The task, and the worker who holds and sends it: the caller, or for a supervisor the agent holding it."""
    gateway = current_gateway()
    try:
        task = gateway.fetch_task(task_sid)
    except PermanentTwilioError as exc:
        if exc.status == 404:
            raise ApiError(404, "task_not_found", f"Task {task_sid} does not exist") from None
        raise
    holders = [r.worker_sid for r in gateway.list_reservations(task_sid) if r.status in HOLDING_STATUSES]
    if caller.worker_sid in holders:
        return task, caller.worker_sid
    if not caller.is_privileged:
        raise ApiError(403, "not_your_task", f"Task {task_sid} is not yours: only its agent or a supervisor may "
                                             "transfer it")
    if not holders:
        raise ApiError(409, "task_not_assigned", f"No agent holds task {task_sid} (no accepted reservation)")
    return task, holders[0]


def _transfer(transfer_id: str) -> Transfer:
    record = current_store().load(transfer_id)
    if record is None:
        raise ApiError(404, "transfer_not_found", f"Transfer {transfer_id} does not exist")
    logs.bind(transfer_id=record.transfer.id)
    return record.transfer


def _may_read(caller: Caller, transfer: Transfer) -> bool:
    if caller.is_privileged:
        return True
    agents = (transfer.from_worker_sid, *transfer.offered_worker_sids, transfer.accepted_worker_sid)
    return caller.worker_sid is not None and caller.worker_sid in agents


def _with_names(transfer: Transfer, names: dict[str, str]) -> dict[str, Any]:
    """A transfer as the API serves it, with the friendly names of the sids it mentions that are known."""
    return {**_transfer_schema.dump(transfer),
            "names": {sid: names[sid] for sid in sids_of(transfer) if sid in names}}


def _answer(transfer: Transfer, status: int, headers: dict[str, str] | None = None,
            lookups: int = MAX_LOOKUPS_PER_ANSWER):
    names = names_of(sids_of(transfer), current_store(), current_gateway(), lookups)
    return jsonify(_with_names(transfer, names)), status, headers or {}
