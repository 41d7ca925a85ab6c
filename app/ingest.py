"""TaskRouter's event callback answered below Flask, for the events a Flex workspace sends by the thousand.

Most of what Twilio posts to Baton is TaskRouter events, most of them about tasks that are not
transfers. For such an event, Flask's request context, routing, form parsing and response cost more
than everything Baton does with it (docs/benchmarks.md, figures 1 and 2). So a WSGI callable in front
of the Flask app answers the callback's ordinary case itself: a form POSTed to
``/webhooks/taskrouter`` (no query string, a length within the body limit) is read, its
X-Twilio-Signature checked as twilio's ``RequestValidator`` checks it, and its event handled by the functions
the Flask view uses (``app.webhooks``): delivered once to its transfer's inbox when it moves a transfer,
answered 204 with the headers, the log line and the metrics that Flask's path gives it (``app.telemetry``).

Every other request goes to Flask untouched, and so does every callback this path cannot answer 204
for certain, with its body as read: a form this reader does not decode exactly as werkzeug does, a
signature that does not match, a missing ``EventType`` or ``Sid``. Flask then answers as it does for
any endpoint: the same 400, 403 or 413, in the same JSON. An event whose delivery raised (its claim
released, as ``deliver_taskrouter_event`` does) is handed to Flask too, which tries once more, as
Twilio's retry would, and answers 503 when Redis or the broker is still away.
"""

from __future__ import annotations

import base64
import hmac
import io
import logging
import time
from collections.abc import Callable, Iterable
from hashlib import sha1
from typing import Any
from urllib.parse import urlparse

from flask import Flask
from twilio.request_validator import add_port, compare, remove_port

from app import BODY_LIMITS, MAX_BODY_BYTES, security_headers
from app.telemetry import record_answer
from app.webhooks import TASKROUTER_FIELDS, deliver_taskrouter_event, transfer_of
from baton.infrastructure import logs

log = logging.getLogger(__name__)

PATH = "/webhooks/taskrouter"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# TaskRouter's event reference asks for exactly this answer; Flask's view gives the same.
STATUS = "204 NO CONTENT"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


# A form's values by name, in the order the body gives them.
FormFields = dict[str, list[str]]


def read_form(body: bytes) -> FormFields | None:
    """The fields of an ``application/x-www-form-urlencoded`` body exactly as werkzeug reads them, or None
    where this reader would not be sure to agree: text that is not UTF-8, a ``%`` that starts no escape.

    werkzeug decodes the body as UTF-8 and splits it with ``urllib.parse.parse_qsl`` (blank values
    kept, ``+`` a space), which decodes each ``%XX`` in Python, one at a time: Twilio's attributes are
    percent-encoded JSON, hundreds of escapes per event. Here each escape becomes ``\\xXX`` (every
    backslash of the text doubled first, so it stays one) and the ``unicode_escape`` codec decodes them
    all in C; the bytes must then be UTF-8. ``tests/app/test_ingest.py`` holds it to werkzeug's reading.
    """
    fields: FormFields = {}
    try:
        for pair in body.split(b"&"):
            if pair:
                name, _, value = pair.partition(b"=")
                fields.setdefault(_unquote(name), []).append(_unquote(value))
    except UnicodeDecodeError:
        return None
    return fields


def _unquote(text: bytes) -> str:
    text = text.replace(b"+", b" ")
    if b"%" not in text:
        return text.decode()
    escaped = text.replace(b"\\", b"\\\\").replace(b"%", b"\\x")
    # unicode_escape reads every byte that is no escape as Latin-1: encoding back gives the bytes unchanged.
    return escaped.decode("unicode_escape").encode("latin-1").decode()


def signed_form(auth_token: str, url: str, body: bytes, signature: str) -> FormFields | None:
    """The fields of a form body posted to ``url``, when it decodes here and ``signature`` is Twilio's for
    them; None otherwise."""
    fields = read_form(body)
    if fields is None or not form_signature_matches(auth_token, url, fields, signature):
        return None
    return fields


def form_signature_matches(auth_token: str, url: str, fields: FormFields, signature: str) -> bool:
    """twilio's ``RequestValidator(auth_token).validate(url, fields, signature)``, with its string to sign built once.

    The SDK signs the URL followed by each name and each of its values (names sorted, a name's distinct
    values sorted), with HMAC-SHA1 and the auth token, and accepts the URL without or with its default
    port; it builds the whole string for each of the two. Here the fields' part is built once and the
    SDK's own ``remove_port``, ``add_port`` and ``compare`` do the rest. ``tests/app/test_ingest.py`` holds
    it to the SDK's verdict.
    """
    signed_fields = "".join([name + value for name in sorted(fields) for value in sorted(set(fields[name]))]).encode()
    parsed, key = urlparse(url), auth_token.encode()
    matches = [compare(base64.b64encode(hmac.new(key, candidate.encode() + signed_fields, sha1).digest()).decode(),
                       signature)
               for candidate in (remove_port(parsed), add_port(parsed))]
    return any(matches)


class TaskRouterIngest:
    """The WSGI application in front of Flask's: TaskRouter's form callbacks answered here, the rest by Flask."""

    def __init__(self, flask_app: Flask, wsgi_app: WsgiApp):
        self.flask_app = flask_app
        self.wsgi_app = wsgi_app
        self.body_limit = BODY_LIMITS.get(PATH, MAX_BODY_BYTES)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST"
                or environ.get("QUERY_STRING")
                or environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM_CONTENT_TYPE
                or "HTTP_X_TWILIO_SIGNATURE" not in environ
                # A SharedKey's signature: Flask's view says why it is refused.
                or "HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS" in environ):
            return self.wsgi_app(environ, start_response)
        length = _content_length(environ)
        if length is None or length > self.body_limit:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        body = environ["wsgi.input"].read(length)
        try:
            if len(body) == length and self._answered(environ, body, started):
                return self._no_content(start_response)
        finally:
            logs.clear()
        # Flask reads the body as it came; one cut short is its 400.
        environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi_app(environ, start_response)

    def _answered(self, environ: dict[str, Any], body: bytes, started: float) -> bool:
        """Handle a signed event as Flask's view would and say so; False leaves the request to Flask."""
        config = self.flask_app.config["BATON"]
        fields = signed_form(config.twilio_auth_token, config.public_base_url + PATH, body,
                             environ["HTTP_X_TWILIO_SIGNATURE"])
        if fields is None or not fields.get("EventType", [""])[0] or not fields.get("Sid", [""])[0]:
            return False
        event = {name: fields[name][0] for name in TASKROUTER_FIELDS if name in fields}
        logs.bind(request_id=logs.request_id_from(environ.get("HTTP_X_REQUEST_ID")))
        transfer_id = transfer_of(event)
        logs.bind(event_sid=event["Sid"], task_sid=event.get("TaskSid"), transfer_id=transfer_id)
        if transfer_id is not None:
            extensions = self.flask_app.extensions
            try:
                deliver_taskrouter_event(extensions["baton.store"], extensions["baton.celery"], transfer_id, event)
            except Exception as exc:
                log.warning("TaskRouter event %s not delivered (%r): Flask tries once more and answers",
                            event["Sid"], exc)
                return False
        # An event about no transfer is counted, not logged (as app.telemetry.log_at_debug has Flask do).
        record_answer("POST", PATH, 204, time.perf_counter() - started, webhook="taskrouter",
                      quiet=transfer_id is None)
        return True

    def _no_content(self, start_response: StartResponse) -> list[bytes]:
        headers = [("Content-Type", "application/json"),
                   *security_headers(self.flask_app.config["BATON"]).items(),
                   ("X-Request-ID", logs.bound("request_id") or "")]
        start_response(STATUS, headers)
        return []


def _content_length(environ: dict[str, Any]) -> int | None:
    # Digits only: int() would also take a sign, spaces or underscores, which werkzeug does not.
    value = environ.get("CONTENT_LENGTH", "")
    return int(value) if value.isascii() and value.isdigit() else None
