"""Baton's HTTP edge: webhooks and the agent API verify, validate, record and enqueue; nothing more."""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask, current_app

from baton.config import Config, load_config
from baton.store import Store, connect_redis
from baton.twilio_gateway import TwilioGateway
from workers.celery_app import create_celery

# Twilio's largest webhook form (4 KiB of task attributes, worker attributes, …) fits with room to spare.
MAX_BODY_BYTES = 256 * 1024


def create_app(config: Config | None = None) -> Flask:
    """The Flask application; without ``config`` it is read from the environment (gunicorn, Procfile)."""
    config = config or load_config(os.environ)
    app = Flask(__name__)
    app.config["BATON"] = config
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if config.secret_key:
        app.secret_key = config.secret_key
    app.extensions["baton.store"] = Store(connect_redis(config.redis_url))
    app.extensions["baton.gateway"] = TwilioGateway.from_config(config)
    # Used only to enqueue: the web process never imports or runs the workers' tasks.
    app.extensions["baton.celery"] = create_celery(config)

    from app import api, health, webhooks
    from app.errors import register_error_handlers

    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(webhooks.blueprint)
    return app


# The current application's services, for the views.


def current_config() -> Config:
    return current_app.config["BATON"]


def current_store() -> Store:
    return current_app.extensions["baton.store"]


def current_gateway() -> TwilioGateway:
    return current_app.extensions["baton.gateway"]


def current_celery() -> Celery:
    return current_app.extensions["baton.celery"]
