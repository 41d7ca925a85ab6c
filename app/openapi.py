"""The OpenAPI 3 description of Baton's HTTP API, served at ``/openapi.json``.

Generated, not written: the request and answer bodies come from the marshmallow schemas the views
load and dump with (apispec's marshmallow plugin), the paths from the application's own routes, each
operation's summary from its view's docstring. What the schemas cannot say (who may call, which
statuses an operation answers with) is in ``OPERATIONS``, one entry per view; a route without one
makes building the document fail, so a new endpoint cannot go undocumented.
"""

from __future__ import annotations

import copy
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from marshmallow import Schema, fields

from app import current_config
from app.schemas import (
    ConversationEventSchema,
    Sid,
    TaskRouterEventSchema,
    Timestamp,
    TransferQuerySchema,
    TransferRequestSchema,
    TransferSchema,
)
from baton.domain.settings import SettingsSchema

OPENAPI_VERSION = "3.0.3"
# Routes that are not part of the API: the admin pages (HTML for a browser) and static files.
UNDOCUMENTED = re.compile(r"^(admin\.|static$)")

blueprint = Blueprint("openapi", __name__)


@blueprint.get("/openapi.json")
def openapi_json():
    """This document: the OpenAPI 3 description of Baton's API."""
    document = current_app.extensions.get("baton.openapi")
    if document is None:
        document = current_app.extensions["baton.openapi"] = build(current_app, current_config().public_base_url)
    return jsonify(document)


# Answers the views build by hand, described for the document.


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable and machine-readable: `not_your_task`"})
    message = fields.String(required=True, metadata={"description": "For people"})
    field = fields.String(metadata={"description": "The body field, query parameter or header at fault"})


class ErrorSchema(Schema):
    """Every error answer."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class TransferListSchema(Schema):
    transfers = fields.List(fields.Nested(TransferSchema), required=True)


class WorkflowOptionSchema(Schema):
    sid = fields.String(required=True, metadata={"example": "WW0123456789abcdef0123456789abcdef"})
    name = fields.String(required=True, metadata={"example": "Billing escalations"})


class TransferOptionsSchema(Schema):
    """What an agent's transfer form may offer."""

    transfers_enabled = fields.Boolean(required=True)
    notes_enabled = fields.Boolean(required=True)
    summary_enabled = fields.Boolean(required=True)
    notes_max_length = fields.Integer(required=True, metadata={"description": "The longest notes Baton accepts"})
    workflows = fields.List(fields.Nested(WorkflowOptionSchema), required=True, allow_none=True, metadata={
        "description": "The workspace's workflows but Baton's own, by name; null when TaskRouter could not list "
                       "them just now"})


class NamesSchema(Schema):
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"example": {"WK0123456789abcdef0123456789abcdef": "Carol"}})


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ready", "unavailable"]})
    redis = fields.String(required=True, metadata={"enum": ["ok", "unreachable"]})


class ConversationAnswerSchema(Schema):
    """Conversations expects a JSON object; Baton's is empty."""


class EventStreamsAnswerSchema(Schema):
    """What became of a delivery's CloudEvents (Event Streams needs only a 2xx)."""

    received = fields.Integer(required=True, metadata={"description": "CloudEvents in the delivery"})
    enqueued = fields.Integer(required=True, metadata={"description": "Events of transfers, enqueued"})
    duplicates = fields.Integer(required=True, metadata={"description": "Events of transfers already enqueued (by "
                                                                       "either path)"})
    ignored = fields.Integer(required=True, metadata={"description": "Events of other tasks or types, or of other "
                                                                    "products"})
    malformed = fields.Integer(required=True, metadata={"description": "CloudEvents that could not be read, skipped"})


# Security schemes
FLEX = {"flexToken": []}
ADMIN = [{"adminToken": []}, {"flexToken": []}]
TWILIO = [{"twilioSignature": []}]

_ERRORS = {
    400: "The request does not fit its schema (`invalid_request`, `invalid_json`)",
    401: "No token, or one that is not valid",
    403: "The caller may not do this",
    404: "No such task or transfer",
    409: "The transfer or task is not in a state that allows it",
    413: "The body is larger than 64 KiB",
    422: "An administrator's setting does not allow it, or the `Idempotency-Key` came with another request "
         "(`idempotency_key_reused`)",
    429: "Too many requests from this agent, or too many tokens that are not valid from this address: wait "
         "`Retry-After` seconds",
    503: "Redis, the broker or Twilio is unavailable: try again shortly",
}

TRANSFER_ID = {"name": "transfer_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "A transfer id: `tr_` and 32 hex digits"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"description": _ERRORS[status], "content": {"application/json": {"schema": "Error"}}}
            for status in statuses}


def _json(description: str, schema: Any, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def _transfer_answer(description: str) -> dict[str, Any]:
    return _json(description, "Transfer")


# One entry per view (its endpoint): what apispec cannot read from the code.
OPERATIONS: dict[str, dict[str, Any]] = {
    "api.create_transfer": {
        "tags": ["transfers"], "security": [FLEX],
        "description": "The caller must hold the task (an accepted or wrapping reservation), or be a supervisor. "
                       "The transfer runs in the background: poll `GET /v1/transfers/{transfer_id}`.",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                        "description": "A retried request with the same key answers as the first did"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": "TransferRequest"}}},
        "responses": {"202": _json("Accepted: the transfer is recorded and will run", "Transfer", headers={
            "Location": {"schema": {"type": "string"}, "description": "The transfer's URL"}}),
            **_errors(400, 401, 403, 404, 409, 413, 422, 429, 503)},
    },
    "api.list_transfers": {
        "tags": ["transfers"], "security": [FLEX],
        "parameters": [{"in": "query", "schema": TransferQuerySchema}],
        "responses": {"200": _json("The transfers the caller may read", "TransferList"),
                      **_errors(400, 401, 429, 503)},
    },
    "api.get_transfer": {
        "tags": ["transfers"], "security": [FLEX], "parameters": [TRANSFER_ID],
        "responses": {"200": _transfer_answer("The transfer"), **_errors(401, 403, 404, 429, 503)},
    },
    "api.cancel_transfer": {
        "tags": ["transfers"], "security": [FLEX], "parameters": [TRANSFER_ID],
        "responses": {"202": _transfer_answer("The cancellation is enqueued (or the transfer was already canceled)"),
                      **_errors(401, 403, 404, 409, 429, 503)},
    },
    "api.leave_transfer": {
        "tags": ["transfers"], "security": [FLEX], "parameters": [TRANSFER_ID],
        "responses": {"202": _transfer_answer("Leaving is enqueued (or the sender already left)"),
                      **_errors(401, 403, 404, 409, 429, 503)},
    },
    "api.names": {
        "tags": ["transfers"], "security": [FLEX],
        "description": "For an agent's form that knows only the target's sid. A sid TaskRouter cannot name now is "
                       "absent from the answer.",
        "parameters": [{"name": "sid", "in": "query", "required": True, "style": "form", "explode": True,
                        "schema": {"type": "array", "minItems": 1, "maxItems": 20,
                                   "items": {"type": "string", "pattern": "^(WK|WQ|WW)[0-9a-fA-F]{32}$"}}}],
        "responses": {"200": _json("The names, by sid", NamesSchema), **_errors(400, 401, 429, 503)},
    },
    "api.transfer_options": {
        "tags": ["transfers"], "security": [FLEX],
        "description": "Read-only, for any agent: a plugin shows the notes box, the summary switch and the "
                       "workflows only when they may be used.",
        "responses": {"200": _json("The options", TransferOptionsSchema), **_errors(401, 429, 503)},
    },
    "api.get_settings": {
        "tags": ["settings"], "security": ADMIN,
        "responses": {"200": _json("The settings in force", "Settings"), **_errors(401, 403, 429, 503)},
    },
    "api.patch_settings": {
        "tags": ["settings"], "security": ADMIN,
        "requestBody": {"required": True, "content": {"application/json": {"schema": "Settings"}},
                        "description": "Only the settings to change"},
        "responses": {"200": _json("The settings now in force", "Settings"),
                      **_errors(400, 401, 403, 429, 503)},
    },
    "health.healthz": {
        "tags": ["operations"], "responses": {"200": _json("The process is up", HealthSchema)},
    },
    "health.readyz": {
        "tags": ["operations"],
        "responses": {"200": _json("Redis answers", ReadySchema), "503": _json("Redis does not answer", ReadySchema)},
    },
    "telemetry.prometheus_metrics": {
        "tags": ["operations"], "security": [{}, {"metricsToken": []}],
        "responses": {"200": {"description": "Prometheus' text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **_errors(401, 403)},
    },
    "openapi.openapi_json": {
        "tags": ["operations"],
        "responses": {"200": {"description": "An OpenAPI 3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    },
    "webhooks.taskrouter_event": {
        "tags": ["webhooks"], "security": TWILIO,
        "description": "The workspace's `EventCallbackUrl` (`baton setup` sets it).",
        "requestBody": {"required": True,
                        "content": {"application/x-www-form-urlencoded": {"schema": "TaskRouterEvent"}}},
        "responses": {"204": {"description": "Accepted (an event about a transfer is enqueued once)"},
                      **_errors(400, 403, 413, 503)},
    },
    "webhooks.event_streams_delivery": {
        "tags": ["webhooks"], "security": [{"sinkCredentials": []}],
        "description": "An Event Streams webhook sink's deliveries (`baton setup --events streams` creates the sink): "
                       "a JSON array of CloudEvents (`com.twilio.taskrouter.*`), or one. Authenticated by the "
                       "credentials in the sink's URL; an X-Twilio-Signature, when Twilio sends one, must match. A "
                       "malformed or foreign event is skipped, the others handled as the callback handles them.",
        "parameters": [{"name": "bodySHA256", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "SHA-256 (hex) of the body, when Twilio signs it so"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"type": "array", "items": {"type": "object"}}, {"type": "object"}]}}}},
        "responses": {"200": _json("Accepted", EventStreamsAnswerSchema),
                      "401": {"description": "The sink's credentials are missing or wrong",
                              "content": {"application/json": {"schema": "Error"}}},
                      **_errors(400, 403, 413, 503)},
    },
    "webhooks.conversation_event": {
        "tags": ["webhooks"], "security": TWILIO,
        "description": "The Conversations post-event webhook (`baton setup` registers it). A JSON body is signed "
                       "through the `bodySHA256` query parameter.",
        "parameters": [{"name": "bodySHA256", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "SHA-256 (hex) of a JSON body, added by Twilio"}],
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": "ConversationEvent"},
            "application/json": {"schema": "ConversationEvent"}}},
        "responses": {"200": _json("Accepted", "ConversationAnswer"), **_errors(400, 403, 413, 503)},
    },
}

# Answer fields that always have a value; every other field of a transfer may be null.
_ALWAYS_SET = {"id", "status", "mode", "task_sid", "from_worker_sid", "to", "target_type", "earlier_transfers",
               "attempt", "excluded_workers", "summary_requested", "created_at", "updated_at", "timeline", "names"}


def build(app: Flask, server_url: str) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes (but the admin pages and static files)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Baton", version=_version(), openapi_version=OPENAPI_VERSION, plugins=[plugin],
        info={"description": "Messaging transfers for Twilio Flex Conversations: the agent API a Flex UI plugin "
                             "calls, the administrator's settings, Twilio's webhooks and the operations endpoints."},
        servers=[{"url": server_url}],
    )
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    plugin.converter.add_attribute_function(_sid_pattern)
    spec.components.security_scheme("flexToken", {
        "type": "http", "scheme": "bearer",
        "description": "The agent's Flex token (`manager.store.getState().flex.session.ssoTokenPayload.token`), "
                       "validated with Twilio IAM. Supervisors and admins may act for any agent."})
    spec.components.security_scheme("adminToken", {
        "type": "http", "scheme": "bearer", "description": "`ADMIN_TOKEN` (or a Flex token with the admin role)"})
    spec.components.security_scheme("metricsToken", {
        "type": "http", "scheme": "bearer",
        "description": "`METRICS_TOKEN`, when it is set; without it, only this host (or anyone with `METRICS_PUBLIC`)"})
    spec.components.security_scheme("twilioSignature", {
        "type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
        "description": "Twilio's signature of the request, with the account's auth token"})
    spec.components.security_scheme("sinkCredentials", {
        "type": "http", "scheme": "basic",
        "description": "The user name and password in the Event Streams sink's URL, derived from the auth token"})
    for name, schema in (("TransferRequest", TransferRequestSchema), ("Transfer", TransferSchema),
                         ("TransferList", TransferListSchema), ("Settings", SettingsSchema), ("Error", ErrorSchema),
                         ("TaskRouterEvent", TaskRouterEventSchema), ("ConversationEvent", ConversationEventSchema),
                         ("ConversationAnswer", ConversationAnswerSchema)):
        spec.components.schema(name, schema=schema)

    for path, endpoint, methods in documented_routes(app):
        view = app.view_functions[endpoint]
        operation = copy.deepcopy(OPERATIONS[endpoint])  # KeyError: a route nobody described
        summary, _, _ = (view.__doc__ or "").strip().partition("\n")
        operation.setdefault("summary", summary.rstrip("."))
        operation["operationId"] = view.__name__
        spec.path(path=path, operations={method.lower(): operation for method in methods})

    document = spec.to_dict()
    for name, prop in document["components"]["schemas"]["Transfer"]["properties"].items():
        if name not in _ALWAYS_SET:
            prop["nullable"] = True
    return document


def documented_routes(app: Flask) -> list[tuple[str, str, list[str]]]:
    """(OpenAPI path, endpoint, methods) of every route the document describes."""
    routes = []
    for rule in app.url_map.iter_rules():
        if UNDOCUMENTED.match(rule.endpoint):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes.append((path, rule.endpoint, sorted(rule.methods - {"HEAD", "OPTIONS"})))
    return sorted(routes)


def _sid_pattern(converter, field, **_: Any) -> dict[str, Any]:
    if isinstance(field, Sid):
        return {"pattern": field.pattern.pattern, "example": field.prefixes[0] + "0123456789abcdef" * 2}
    return {}


def _version() -> str:
    try:
        return version("baton")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return "0.0.0"
