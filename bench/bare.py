"""The baseline of the ingest figures: a bare Flask endpoint that answers 204 without reading the request.

Served by the Procfile's own ``web`` command line, with only the application swapped, so that
gunicorn's settings (workers, timeouts, access log, ``gunicorn.conf.py``) are the same for both.
"""

from __future__ import annotations

from flask import Flask, Response


def create_app() -> Flask:
    """A Flask app with Baton's webhook path and readiness probe, doing nothing else."""
    app = Flask(__name__)

    @app.post("/webhooks/taskrouter")
    def taskrouter_event():
        return Response(status=204, content_type="application/json")

    @app.get("/readyz")
    def ready():
        return {"status": "ok"}

    return app
