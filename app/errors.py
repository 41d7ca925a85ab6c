"""The HTTP edge's errors: one exception type with a machine-readable code, rendered in one place.

Every error answer, ours or Flask's (an unknown route, a wrong method, a body too large), is
``{"error": {"code", "message", "field"?}}`` (docs/contracts.md §3.1). Redis or the broker being away, and
Twilio failing while a caller is authorized, are 503s the client may retry.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import redis
from flask import Flask, Response, jsonify
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from baton.infrastructure.twilio_gateway import PermanentTwilioError, RetryableTwilioError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request Baton refuses.

    status: the HTTP status. code: stable and machine-readable (``not_your_task``).
    field: the request field at fault (a body field, a query parameter or a header), if one is.
    headers: headers of the answer (``Retry-After`` on a 429).
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> tuple[Response, int]:
    """The JSON answer for ``error``."""
    response = jsonify(error.to_body())
    response.headers.update({**error.headers, **(headers or {})})
    return response, error.status


def _http_error(error: HTTPException) -> tuple[Response, int]:
    # "Method Not Allowed" -> method_not_allowed; Flask's own headers (Allow on a 405) are kept.
    code = re.sub(r"\W+", "_", (error.name or "error").lower()).strip("_")
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    return error_response(ApiError(error.code or 500, code, error.description or error.name), headers)


def _store_unavailable(error: Exception) -> tuple[Response, int]:
    log.warning("Redis unavailable: %r", error)
    return error_response(ApiError(503, "unavailable", "Baton's store is unavailable; try again shortly"))


def _twilio_unavailable(error: RetryableTwilioError) -> tuple[Response, int]:
    log.warning("Twilio unavailable while authorizing: %s", error)
    headers = {"Retry-After": str(math.ceil(error.retry_after))} if error.retry_after is not None else {}
    return error_response(ApiError(503, "unavailable", "Twilio is unavailable; try again shortly"), headers)


def _twilio_refused(error: PermanentTwilioError) -> tuple[Response, int]:
    # A refusal not handled where the call was made: Baton's own request or credentials are wrong.
    log.error("Twilio refused a request: %s (status %s, code %s)", error, error.status, error.code)
    return error_response(ApiError(502, "twilio_error", "Twilio refused a request Baton made"))


def register_error_handlers(app: Flask) -> None:
    """Render every error ``app`` raises as Baton's JSON error."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _store_unavailable)
    # Enqueueing wraps a broker connection failure in kombu's own error, not redis-py's.
    app.register_error_handler(OperationalError, _store_unavailable)
    app.register_error_handler(RetryableTwilioError, _twilio_unavailable)
    app.register_error_handler(PermanentTwilioError, _twilio_refused)
