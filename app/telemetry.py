"""What the web process tells its operators: a log line per request, webhook metrics, and ``/metrics``.

``/metrics`` asks for ``METRICS_TOKEN`` as a bearer token when it is set. Without it, it answers only
requests from this host (a loopback TCP peer, relayed by no proxy), unless ``METRICS_PUBLIC`` opens it
to anyone: behind Heroku's router no request is from this host.

Each request gets a request id (Heroku's ``X-Request-ID`` when it sent one), bound to the log context
for the request and carried into the Celery tasks it enqueues; the answer repeats it. Gunicorn's own
access log is off: the line written here carries the request id, and the ids a view binds (the
transfer, the TaskRouter task and event).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time

from flask import Blueprint, Flask, Response, g, request

from app import current_config, current_store
from app.auth import parse_bearer
from app.errors import ApiError
from baton.infrastructure import logs, metrics

log = logging.getLogger("baton.requests")

blueprint = Blueprint("telemetry", __name__)

# Polled by probes and Prometheus: logged at DEBUG only.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")
# Headers a proxy adds to the requests it relays: with one of them, a loopback peer is no local client.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def init_app(app: Flask) -> None:
    """Bind each request's ids before any other hook runs, and log it once answered."""
    metrics_dir = app.config["BATON"].metrics_dir
    if metrics_dir:  # gunicorn.conf.py makes it; a process started some other way may not have
        os.makedirs(metrics_dir, exist_ok=True)
    app.before_request(_start)
    # after_request functions run last-registered first: this one, registered first, sees the final answer.
    app.after_request(_finish)
    app.teardown_request(_forget)
    app.register_blueprint(blueprint)


def log_at_debug() -> None:
    """Log this request's line at DEBUG: a webhook about no transfer, most of a Flex workspace's stream
    (thousands a minute in a large one), is counted in the metrics, not logged one by one."""
    g.baton_log_at_debug = True


def _start() -> None:
    g.baton_started = time.perf_counter()
    logs.bind(request_id=logs.request_id_from(request.headers.get("X-Request-ID")))


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("baton_started", time.perf_counter())
    response.headers["X-Request-ID"] = logs.bound("request_id") or ""
    webhook = None
    if request.blueprint == "webhooks" and request.url_rule is not None:
        webhook = request.url_rule.rule.rsplit("/", 1)[-1]
    quiet = request.path in QUIET_PATHS or (g.get("baton_log_at_debug", False) and response.status_code < 300)
    record_answer(request.method, request.path, response.status_code, seconds, webhook=webhook, quiet=quiet)
    return response


def record_answer(method: str, path: str, status: int, seconds: float, webhook: str | None, quiet: bool) -> None:
    """A request's log line (at DEBUG when ``quiet``) and, for a ``webhook`` (its endpoint's last path
    segment), its metrics: for Flask's requests and for the TaskRouter events answered below Flask (app.ingest)."""
    if webhook is not None:
        metrics.webhook_answered(webhook, status, seconds)
    log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %s", method, path, status,
            extra={"method": method, "path": path, "status": status, "duration_ms": round(seconds * 1000, 1)})


def _forget(_exc: BaseException | None) -> None:
    logs.clear()


@blueprint.get("/metrics")
def prometheus_metrics():
    """Prometheus metrics of the whole deployment, in the text format: with ``METRICS_TOKEN`` as a bearer when it is
    set; else to this host only, unless ``METRICS_PUBLIC``."""
    config = current_config()
    if config.metrics_token:
        token = parse_bearer(request.headers.get("Authorization", ""))
        if token is None or not hmac.compare_digest(token.encode(), config.metrics_token.encode()):
            raise ApiError(401, "missing_token", "Send METRICS_TOKEN as 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
    elif not (config.metrics_public or _from_this_host()):
        raise ApiError(403, "metrics_not_public", "/metrics answers other hosts only with METRICS_TOKEN (sent as "
                                                  "'Authorization: Bearer <token>'), or with METRICS_PUBLIC=true")
    body = metrics.exposition(current_store(), config.metrics_dir)
    return Response(body, content_type=metrics.CONTENT_TYPE)


def _from_this_host() -> bool:
    """The request comes from this host: its TCP peer is a loopback address and no proxy relayed it."""
    if any(header in request.headers for header in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:  # a Unix socket's peer has no address
        return False
