"""The admin page under ``/admin``: the transfer settings and the recent transfers with their timelines.

Signing in takes ``ADMIN_TOKEN`` and gives a session cookie signed with ``SECRET_KEY`` (Flask's own
session: HttpOnly, SameSite=Lax, Secure behind an https ``PUBLIC_BASE_URL``, limited to ``/admin``).
The session holds a keyed fingerprint of the admin token, so changing ``ADMIN_TOKEN`` signs every
session out, and the id of a session kept in Redis, checked (and extended) on every request: signing
out deletes it, so the cookie, or any copy of it, no longer signs in. Every POST form carries the
session's CSRF token in a hidden field. Without ``ADMIN_TOKEN`` the page does not exist (404).

Failed sign-ins are counted per client address (``app.auth.client_address``) and over all clients, in
windows of ``SIGN_IN_WINDOW_S``: past ``SIGN_IN_FAILURES_PER_CLIENT`` from one address, or
``SIGN_IN_FAILURES_IN_ALL`` from all, sign-in answers 429 with Retry-After, without looking at the token,
until the window ends. A pause is logged once a window.

The pages are server-rendered; ``admin.js`` refreshes the list and a timeline from the small JSON
endpoints beside them, with the same row markup (``<template>``) the server renders.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from marshmallow import ValidationError, validate

from app import current_config, current_gateway, current_store
from app.auth import client_address
from baton.domain.settings import CLOSE_SENDER_ON, Settings, SettingsSchema, validated_settings
from baton.domain.transfers import PENDING_STATES, TimelineEntry, Transfer
from baton.infrastructure.names import names_of, sids_of

log = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
                      static_folder="static/admin", static_url_path="/static")

SESSION_LIFETIME = timedelta(hours=8)
SIGN_IN_WINDOW_S = 300
SIGN_IN_FAILURES_PER_CLIENT = 10
SIGN_IN_FAILURES_IN_ALL = 100
RECENT_LIMIT = 50
POLL_INTERVAL_MS = 2000
# The list's filters: a name in the query string -> the states it shows.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "in_progress": PENDING_STATES,
    "accepted": ("accepted",),
    "completed": ("completed",),
    "failed": ("failed",),
    "canceled": ("canceled",),
}
STATUS_FILTER_LABELS = {"": "All", "in_progress": "In progress", "accepted": "Accepted", "completed": "Completed",
                        "failed": "Failed", "canceled": "Canceled"}
# Views reachable without a session (the stylesheet and script, and signing in itself).
PUBLIC_ENDPOINTS = ("admin.static", "admin.sign_in")


@blueprint.record_once
def _configure_session_cookie(state: BlueprintSetupState) -> None:
    # Only the admin page uses Flask's session, so its cookie is shaped here, once, for the whole app.
    config = state.app.config["BATON"]
    state.app.config.update(
        SESSION_COOKIE_NAME="baton_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    state.app.session_interface = AdminOnlySessions()


class AdminOnlySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened for the admin pages only.

    Flask opens the session of every request; for a webhook that is about a tenth of its time (the
    cookie's signing serializer is built each time), and only the admin pages have a session to read.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path != blueprint.url_prefix and not request.path.startswith(blueprint.url_prefix + "/"):
            return None  # Flask then gives the request a null session, which is never saved
        return super().open_session(app, request)


# Settings form: how each setting is shown; ranges and choices come from the schema that validates them.


@dataclass(frozen=True)
class SettingField:
    """One setting on the form: ``name`` is the Settings field; ``kind`` "switch", "number", "text" or "select"."""

    name: str
    label: str
    help: str
    kind: str
    unit: str = ""


SETTINGS_SECTIONS: tuple[tuple[str, tuple[SettingField, ...]], ...] = (
    ("Messaging transfers", (
        SettingField("transfers_enabled", "Transfers",
                     "Agents can transfer a conversation to another agent, a queue or a workflow.", "switch"),
        SettingField("notes_enabled", "Transfer notes",
                     "Agents can leave a note for the agent who receives the transfer.", "switch"),
        SettingField("summary_enabled", "Conversation summary",
                     "Agents can send a summary of the conversation with the transfer.", "switch"),
    )),
    ("Offers and timeouts", (
        SettingField("max_attempts", "Max attempts", "Offers made before the transfer fails.", "number"),
        SettingField("offer_timeout_s", "Offer timeout",
                     "How long the target agent has to accept (written into the transfer workflow by baton setup).",
                     "number", "seconds"),
        SettingField("transfer_timeout_s", "Transfer timeout",
                     "A transfer not accepted by then fails and the sender keeps the customer.", "number", "seconds"),
    )),
    ("Sender and privacy", (
        SettingField("close_sender_on", "Close sender on",
                     "Close the sender's task when an agent accepts, or as soon as a cold transfer to a queue "
                     "enters it (Flex's native behaviour).", "select"),
        SettingField("sender_wrapup", "Sender wrap-up",
                     "Put the sender in wrap-up instead of closing their task.", "switch"),
        SettingField("redact_pii", "Redact PII",
                     "Card numbers, security codes and SSNs are redacted from every copy Baton makes.", "switch"),
    )),
    ("The customer", (
        SettingField("customer_notice_enabled", "Customer notice",
                     "Post a message into the conversation when a transfer starts, so the customer knows someone "
                     "else is coming.", "switch"),
        SettingField("customer_notice_text", "Notice text",
                     "What the customer reads (SMS and WhatsApp customers receive it as a message).", "text"),
    )),
)
SETTING_FIELDS = {field.name: field for _, fields in SETTINGS_SECTIONS for field in fields}
CLOSE_SENDER_LABELS = {"accepted": "an agent accepts", "queued": "it enters the queue"}


def _input_range(name: str) -> dict[str, int]:
    """The min and max of a number setting, or of a text setting's length, as its schema validates them."""
    bounds: dict[str, int] = {}
    for validator in SettingsSchema().fields[name].validators:
        if isinstance(validator, (validate.Range, validate.Length)):
            bounds.update({key: value for key, value in (("min", validator.min), ("max", validator.max))
                           if value is not None})
    return bounds


# Signing in, CSRF and the admin's session.


def _token_fingerprint(admin_token: str, secret_key: str) -> str:
    # Keyed, because the session cookie is signed, not encrypted: anyone holding it can read it.
    return hmac.new(secret_key.encode(), b"baton-admin:" + admin_token.encode(), hashlib.sha256).hexdigest()


@blueprint.context_processor
def _page_context() -> dict[str, Any]:
    # What _guard found: a page shown because Redis failed does not ask Redis again.
    return {"signed_in": g.get("admin_signed_in", False)}


def _signed_in() -> bool:
    """The request carries a live session: the current admin token's fingerprint, and an id Redis still has."""
    if "admin_signed_in" not in g:
        g.admin_signed_in = _session_is_live()
    return g.admin_signed_in


def _session_is_live() -> bool:
    config = current_config()
    if not (config.admin_token and config.secret_key):
        return False
    fingerprint, session_id = session.get("admin"), session.get("id")
    return (isinstance(fingerprint, str) and isinstance(session_id, str)
            and hmac.compare_digest(fingerprint, _token_fingerprint(config.admin_token, config.secret_key))
            and current_store().admin_session_is_live(session_id, _session_lifetime_s()))


def _session_lifetime_s() -> int:
    return int(SESSION_LIFETIME.total_seconds())


@blueprint.app_template_global()
def csrf_token() -> str:
    """The session's CSRF token, made on first use; every POST form sends it back in ``csrf_token``."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok() -> bool:
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


@blueprint.before_request
def _guard():
    """404 while the admin page is off; CSRF on every POST; a session for everything but signing in."""
    if request.endpoint == "admin.static":
        return None
    config = current_config()
    if not (config.admin_token and config.secret_key):
        return _message("The admin page is off",
                        "Set ADMIN_TOKEN (and SECRET_KEY, which signs the admin's session) to turn it on.", 404)
    signed_in = _signed_in()
    if request.method == "POST" and not _csrf_ok():
        log.warning("admin: form refused, its CSRF token is missing or wrong (%s %s)", request.method, request.path)
        return _message("This form has expired",
                        "Its security token is missing or out of date (or cookies are off). Go back, reload the "
                        "page and try again.", 400)
    if request.endpoint in PUBLIC_ENDPOINTS or signed_in:
        return None
    if request.path.endswith(".json"):
        return jsonify(error={"code": "signed_out", "message": "Sign in to the admin page again"}), 401
    return redirect(url_for("admin.sign_in", next=request.full_path.rstrip("?")))


@blueprint.after_request
def _headers(response):
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    # No inline script or style anywhere: the page's own files only.
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                   "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    return response


@blueprint.errorhandler(404)
def _not_found(error):
    if request.path.endswith(".json"):
        return jsonify(error={"code": "not_found", "message": error.description}), 404
    return _message("Not found", error.description, 404)


@blueprint.errorhandler(redis.RedisError)
def _store_unavailable(error: redis.RedisError):
    log.warning("admin: Redis unavailable: %r", error)
    if request.path.endswith(".json"):
        return jsonify(error={"code": "unavailable", "message": "Baton's store is unavailable"}), 503
    return _message("Baton's store is unavailable", "Redis does not answer; try again shortly.", 503)


def _message(title: str, text: str, status: int):
    return render_template("admin/message.html", title=title, text=text), status


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the admin page only, never another site."""
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("admin.transfers")


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """The sign-in form; the right ADMIN_TOKEN starts a new session."""
    next_url = _safe_next(request.values.get("next"))
    if _signed_in():
        return redirect(next_url)
    error = None
    if request.method == "POST":
        pause_s = _sign_in_pause_s()
        if pause_s:
            error = f"Too many failed sign-ins: try again in {_duration(pause_s)}."
            return (render_template("admin/sign_in.html", error=error, next_url=next_url), 429,
                    {"Retry-After": str(pause_s)})
        config = current_config()
        token = request.form.get("token", "")
        if hmac.compare_digest(token.encode(), config.admin_token.encode()):
            _start_session(config.admin_token, config.secret_key)
            log.info("admin: signed in from %s", client_address())
            return redirect(next_url)
        log.warning("admin: sign-in refused from %s", client_address())
        _count_failed_sign_in()
        error = "That is not the admin token."
    status = 401 if error else 200
    return render_template("admin/sign_in.html", error=error, next_url=next_url), status


@blueprint.post("/sign-out")
def sign_out():
    """Ends the session in Redis too: the cookie, wherever a copy of it is, no longer signs in."""
    current_store().end_admin_session(session["id"])
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("admin.sign_in"))


def _start_session(admin_token: str, secret_key: str) -> None:
    session.clear()  # a new session, and a new CSRF token, for the signed-in admin
    session.permanent = True
    session["admin"] = _token_fingerprint(admin_token, secret_key)
    session["id"] = secrets.token_urlsafe(32)
    current_store().start_admin_session(session["id"], _session_lifetime_s())


def _sign_in_subjects() -> tuple[tuple[str, int, str], ...]:
    """(rate limit subject, failures allowed a window, who it counts) of this request's client, and of everyone."""
    address = client_address()
    return ((f"admin-sign-in:{address}", SIGN_IN_FAILURES_PER_CLIENT, f"from {address}"),
            ("admin-sign-in", SIGN_IN_FAILURES_IN_ALL, "from all clients"))


def _sign_in_pause_s() -> int:
    """Whole seconds until this client may try to sign in again; 0 while neither it nor everyone is past the limit."""
    store = current_store()
    waits = []
    for subject, allowed, _ in _sign_in_subjects():
        failures, remaining_s = store.counted_requests(subject)
        if failures >= allowed:
            waits.append(remaining_s)
    return max(1, math.ceil(max(waits))) if waits else 0


def _count_failed_sign_in() -> None:
    store = current_store()
    for subject, allowed, who in _sign_in_subjects():
        failures, remaining_s = store.count_request(subject, SIGN_IN_WINDOW_S)
        if failures == allowed:  # once a window, however many attempts follow
            log.warning("admin: %d failed sign-ins %s within %d s: sign-ins %s are refused for %d s",
                        failures, who, SIGN_IN_WINDOW_S, who, math.ceil(remaining_s))


# Settings


@blueprint.route("/settings", methods=["GET", "POST"])
def settings():
    """The settings form; a change is validated as a whole and stored, or shown back with each error by its field."""
    current = _settings()
    values: dict[str, Any] = current.to_dict()
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {name: (name in request.form) if field.kind == "switch" else request.form.get(name, "").strip()
                  for name, field in SETTING_FIELDS.items()}
        try:
            changed = validated_settings(values, current)
        except ValidationError as exc:
            errors = {name: " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
                      for name, messages in exc.messages.items()}
        else:
            diff = {name: value for name, value in changed.to_dict().items() if value != getattr(current, name)}
            # Saved only when something changed: until then the environment's values keep applying.
            if diff:
                current_store().save_settings(changed)
                log.info("admin: settings changed: %s", diff)
            flash("Settings saved." if diff else "Nothing changed.")
            return redirect(url_for("admin.settings"))
    page = render_template("admin/settings.html", sections=SETTINGS_SECTIONS, values=values, errors=errors,
                           ranges={name: _input_range(name) for name, field in SETTING_FIELDS.items()
                                   if field.kind in ("number", "text")},
                           choices=[(choice, CLOSE_SENDER_LABELS.get(choice, choice)) for choice in CLOSE_SENDER_ON])
    return page, 422 if errors else 200


def _settings() -> Settings:
    return current_store().settings(current_config().settings)


# Transfers


def _status_filter() -> str:
    status = request.args.get("status", "")
    if status and status not in STATUS_FILTERS:
        abort(404, f"There is no status filter '{status}'.")
    return status


@blueprint.get("/")
def transfers():
    """The recent transfers, newest first, optionally filtered by status; refreshed live by admin.js."""
    status = _status_filter()
    return render_template("admin/transfers.html", rows=_rows(status), status=status, filters=STATUS_FILTER_LABELS,
                           limit=RECENT_LIMIT, poll_url=url_for("admin.transfers_json", status=status or None),
                           poll_ms=POLL_INTERVAL_MS, now=_clock(time.time()))


@blueprint.get("/transfers.json")
def transfers_json():
    """The list's rows, as the page shows them."""
    return jsonify(transfers=_rows(_status_filter()), now=_clock(time.time()))


@blueprint.get("/transfers/<transfer_id>")
def transfer(transfer_id: str):
    """One transfer: its details and its whole timeline, refreshed live until it is over."""
    found = _transfer(transfer_id)
    names = _names(sids_of(found))
    return render_template("admin/transfer.html", transfer=found, details=transfer_details(found, names),
                           timeline=timeline_rows(found, names), final=found.is_final,
                           poll_url=url_for("admin.transfer_json", transfer_id=found.id), poll_ms=POLL_INTERVAL_MS)


@blueprint.get("/transfers/<transfer_id>.json")
def transfer_json(transfer_id: str):
    found = _transfer(transfer_id)
    names = _names(sids_of(found))
    return jsonify(details=transfer_details(found, names), timeline=timeline_rows(found, names),
                   final=found.is_final, now=_clock(time.time()))


def _transfer(transfer_id: str) -> Transfer:
    record = current_store().load(transfer_id)
    if record is None:
        abort(404, f"There is no transfer {transfer_id}: finished transfers are kept for RETENTION_DAYS days.")
    return record.transfer


def _rows(status: str) -> list[dict[str, Any]]:
    recent = current_store().recent_transfers(RECENT_LIMIT, STATUS_FILTERS.get(status))
    names = _names(sid for transfer in recent for sid in (transfer.from_worker_sid, transfer.target_sid))
    return [transfer_row(transfer, names) for transfer in recent]


def _names(sids: Iterable[str]) -> dict[str, str]:
    return names_of(sids, current_store(), current_gateway())


# What the pages show of a transfer. Rendered by the templates and, refreshed, by admin.js: one shape for both.

# A transfer's target type, as the Flex UI says it.
TARGET_LABELS = {"worker": "agent", "queue": "queue", "workflow": "workflow"}


def time_to_accept(transfer: Transfer) -> float | None:
    """Seconds from the request to the first acceptance, from the timeline; None until someone accepts."""
    requested = next((entry.at for entry in transfer.timeline if entry.event == "requested"), transfer.created_at)
    accepted = next((entry.at for entry in transfer.timeline if entry.event == "accepted"), None)
    return None if accepted is None else max(0.0, accepted - requested)


def transfer_row(transfer: Transfer, names: Mapping[str, str]) -> dict[str, Any]:
    """A transfer as a line of the list: agents, queues and workflows by name where TaskRouter gave one."""
    accept = time_to_accept(transfer)
    return {
        "id": transfer.id,
        "short_id": f"{transfer.id[:3]}…{transfer.id[-8:]}",
        "href": url_for("admin.transfer", transfer_id=transfer.id),
        "status": transfer.status,
        "updated": _clock(transfer.updated_at),
        "updated_full": _timestamp(transfer.updated_at),
        "from": names.get(transfer.from_worker_sid, transfer.from_worker_sid),
        "from_sid": transfer.from_worker_sid,
        "to": names.get(transfer.target_sid, transfer.target_sid),
        "to_sid": transfer.target_sid,
        "to_type": TARGET_LABELS.get(transfer.target_type, transfer.target_type),
        "mode": transfer.mode,
        "attempts": str(transfer.attempt),
        "time_to_accept": "—" if accept is None else _duration(accept),
    }


def transfer_details(transfer: Transfer, names: Mapping[str, str]) -> dict[str, Any]:
    """The transfer's fields for its page: agents, queues and workflows by name and sid."""
    failure = " ".join(str(part) for part in (transfer.failure_reason, transfer.failure_code and
                                              f"(Twilio error {transfer.failure_code})") if part)
    accept = time_to_accept(transfer)
    return {
        "status": transfer.status,
        "mode": transfer.mode,
        "from_worker": _named(transfer.from_worker_sid, names),
        "from_task": transfer.from_task_sid,
        "to": f"{TARGET_LABELS.get(transfer.target_type, transfer.target_type)} {_named(transfer.target_sid, names)}",
        "route": " ".join(part for part in (transfer.route, transfer.queue_sid and _named(transfer.queue_sid, names))
                          if part) or "—",
        "new_task": transfer.new_task_sid or "—",
        "attempts": str(transfer.attempt),
        "accepted_by": _named(transfer.accepted_worker_sid, names) if transfer.accepted_worker_sid else "—",
        "time_to_accept": "—" if accept is None else _duration(accept),
        "conversation": transfer.conversation_sid or "—",
        "requested": _timestamp(transfer.created_at),
        "updated": _timestamp(transfer.updated_at),
        "summary": "requested" if transfer.summary_requested else "no",
        "notes": transfer.notes or "—",
        "failure": failure or "—",
    }


def timeline_rows(transfer: Transfer, names: Mapping[str, str]) -> list[dict[str, str]]:
    """The timeline, one row per entry, with the time since the request."""
    return [_timeline_row(entry, transfer.created_at, names) for entry in transfer.timeline]


def _named(sid: str, names: Mapping[str, str]) -> str:
    """The name and the sid, as in "Carol (WK…)", when TaskRouter gave a name; else the sid."""
    return f"{names[sid]} ({sid})" if sid in names else sid


def _timeline_row(entry: TimelineEntry, start: float, names: Mapping[str, str]) -> dict[str, str]:
    detail = " ".join(part for part in (entry.reason, entry.code is not None and f"(error {entry.code})") if part)
    return {
        "time": _clock(entry.at),
        "time_full": _timestamp(entry.at),
        "elapsed": f"+{_duration(max(0.0, entry.at - start))}",
        "event": entry.event,
        "state": entry.state,
        "agent": names.get(entry.worker_sid, entry.worker_sid) if entry.worker_sid else "",
        "agent_sid": entry.worker_sid or "",
        "reservation": entry.reservation_sid or "",
        "detail": detail,
    }


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S") if at else "—"


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
