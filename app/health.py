"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process is up; deliberately touches nothing else."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz():
    """Ready to take traffic: Redis (broker and store) answers."""
    if current_app.extensions["baton.store"].is_reachable():
        return jsonify(status="ready", redis="ok")
    return jsonify(status="unavailable", redis="unreachable"), 503
