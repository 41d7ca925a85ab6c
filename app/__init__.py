"""Baton's HTTP edge: webhooks and the agent API verify, validate, record and enqueue; nothing more."""

from __future__ import annotations

import os

from flask import Flask

from baton.config import Config, load_config
from baton.store import Store, connect_redis


def create_app(config: Config | None = None) -> Flask:
    """The Flask application; without ``config`` it is read from the environment (gunicorn, Procfile)."""
    config = config or load_config(os.environ)
    app = Flask(__name__)
    app.config["BATON"] = config
    if config.secret_key:
        app.secret_key = config.secret_key
    app.extensions["baton.store"] = Store(connect_redis(config.redis_url))

    from app import health

    app.register_blueprint(health.blueprint)
    return app
