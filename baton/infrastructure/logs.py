"""Baton's logs: one JSON object a line on stdout, carrying the ids of what is being worked on.

Every line has ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message`` and ``process`` (web,
worker or beat), and, where known, ``request_id``, ``transfer_id``, ``task_sid``, ``event_sid``
and the Celery task. Those ids are bound to the current context (``bind``): by the web app for a
request, then carried in the Celery message headers (``workers.celery_app``) into the task that
the request enqueued, so one ``request_id`` follows a transfer from the agent's click to Twilio.

``configure_logging`` is the one place logging is set up: by ``create_app``, by the Celery worker
and beat (Celery's ``setup_logging`` signal, so Celery installs no handler of its own), and for
gunicorn's own lines through ``gunicorn_logconfig``. Its handler carries ``RedactingFilter``; no
code logs a secret, a token, notes or a message body in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from baton.domain.redaction import RedactingFilter, redact

# The ids a line carries when they are bound, in this order.
CONTEXT_FIELDS = ("request_id", "transfer_id", "task_sid", "event_sid", "celery_task", "celery_task_id")
# What a log call may add with ``extra=`` (the web's request line).
EXTRA_FIELDS = ("method", "path", "status", "duration_ms")
# Heroku's router sends X-Request-ID with 20 to 200 characters; other proxies send a UUID or similar.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@+/=-]{8,200}$")

_context: ContextVar[MappingProxyType[str, str]] = ContextVar("baton_log_context", default=MappingProxyType({}))


def bind(**ids: str | None) -> None:
    """Add ids (``transfer_id=…``) to the current context; None values are left out."""
    _context.set(MappingProxyType({**_context.get(), **{key: value for key, value in ids.items() if value}}))


@contextmanager
def kept() -> Iterator[None]:
    """Whatever is bound inside is forgotten on leaving: the ids bound before are back."""
    token = _context.set(_context.get())
    try:
        yield
    finally:
        _context.reset(token)


def clear() -> None:
    """Forget every id bound in the current context (end of a request or a task)."""
    _context.set(MappingProxyType({}))


def bound(name: str) -> str | None:
    """The id ``name`` bound in the current context, if any."""
    return _context.get().get(name)


def request_id_from(header: str | None) -> str:
    """The caller's request id (Heroku's ``X-Request-ID``) when it looks like one, else a new one."""
    if header and _REQUEST_ID.match(header) and redact(header) == header:
        return header
    return str(uuid.uuid4())


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON, with the bound ids; ``process`` names the process type."""

    def __init__(self, process: str = "baton"):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
        }
        # Ids are Baton's own or Twilio's (a caller's request id is checked by request_id_from); extras
        # may come from a request (its path) and are redacted like the message.
        line.update(_context.get())
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class StdoutHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` as it is when a line is written, not as it was when the handler was made
    (a test runner swaps it for each test; a stream kept from then would be closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _handler(process: str) -> logging.Handler:
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter(process))
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(process: str, level: str = "INFO") -> None:
    """JSON lines on stdout for every logger of this process, at ``level``; safe to call again."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    root.addHandler(_handler(process))
    root.setLevel(level)


def gunicorn_logconfig(level: str = "INFO") -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own lines (booting, worker timeouts) as JSON too, and no access
    log (the app writes one line a request, with its request id)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "process": "web"}},
        "filters": {"redact": {"()": RedactingFilter}},
        "handlers": {"stdout": {"class": f"{__name__}.StdoutHandler", "formatter": "json", "filters": ["redact"]}},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
