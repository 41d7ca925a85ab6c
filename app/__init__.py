"""Baton's HTTP edge: webhooks and the agent API verify, validate, record and enqueue; nothing more."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

from baton.infrastructure.config import Config, load_config
from baton.infrastructure.logs import configure_logging
from baton.infrastructure.store import Store
from baton.infrastructure.twilio_gateway import TwilioGateway
from workers.celery_app import create_celery

# Twilio's largest webhook form (4 KiB of task attributes, worker attributes, …) fits with room to spare;
# the API's largest body (a transfer request with 1000 characters of notes) is far smaller.
MAX_BODY_BYTES = 64 * 1024
# An Event Streams delivery is a batch of events, each with its task's and worker's attributes (up to
# 4 KiB each): refusing a large batch would have Twilio retry it for hours.
BODY_LIMITS = {"/webhooks/event-streams": 8 * 1024 * 1024}
# Behind an https PUBLIC_BASE_URL, browsers keep to https for a year. Not for subdomains: those are the operator's.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a body nested too deeply for the parser refused like any other bad JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Werkzeug turns a ValueError into a 400 (or None, silently); a RecursionError would be a 500.
            raise ValueError("JSON nested too deeply") from None


def create_app(config: Config | None = None) -> Flask:
    """The Flask application; without ``config`` it is read from the environment (gunicorn, Procfile)."""
    config = config or load_config(os.environ)
    configure_logging("web", config.log_level)
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config["BATON"] = config
    # Bodies read (forms, JSON) are cut off at this size; _refuse_large_bodies refuses the others.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if config.secret_key:
        app.secret_key = config.secret_key
    app.extensions["baton.store"] = Store.from_config(config)
    app.extensions["baton.gateway"] = TwilioGateway.from_config(config)
    # Used only to enqueue: the web process never imports or runs the workers' tasks.
    app.extensions["baton.celery"] = create_celery(config)

    from app import admin, api, health, openapi, telemetry, webhooks
    from app.errors import register_error_handlers
    from app.ingest import TaskRouterIngest

    register_error_handlers(app)
    telemetry.init_app(app)  # first: every request, even one refused below, has its id and its log line
    app.before_request(_refuse_large_bodies)
    app.after_request(_security_headers)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(admin.blueprint)
    # TaskRouter's form callbacks, most of what Twilio posts, are answered below Flask (app.ingest).
    app.wsgi_app = TaskRouterIngest(app, app.wsgi_app)  # type: ignore[method-assign]
    return app


def _refuse_large_bodies() -> None:
    """413 for a body announced larger than the path's limit (MAX_BODY_BYTES but for BODY_LIMITS), even
    where the view would not read it."""
    limit = BODY_LIMITS.get(request.path, MAX_BODY_BYTES)
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _security_headers(response: Response) -> Response:
    response.headers.update(security_headers(current_config()))
    return response


def security_headers(config: Config) -> dict[str, str]:
    """What every answer carries: no content sniffing, and over https, Strict-Transport-Security."""
    if config.public_base_url.startswith("https://"):
        return {"X-Content-Type-Options": "nosniff", "Strict-Transport-Security": STRICT_TRANSPORT_SECURITY}
    return {"X-Content-Type-Options": "nosniff"}


# The current application's services, for the views.


def current_config() -> Config:
    return current_app.config["BATON"]


def current_store() -> Store:
    return current_app.extensions["baton.store"]


def current_gateway() -> TwilioGateway:
    return current_app.extensions["baton.gateway"]


def current_celery() -> Celery:
    return current_app.extensions["baton.celery"]
