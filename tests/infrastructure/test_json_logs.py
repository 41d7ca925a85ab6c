"""JSON log lines, their ids, and the request id carried from a web request into the Celery task it enqueued."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from celery.app.task import Context
from support.edge import bearer

from baton.infrastructure import logs
from baton.infrastructure.logs import configure_logging, request_id_from
from baton.infrastructure.store import celery_queue_lists
from workers.celery_app import REQUEST_ID_HEADER, TASKROUTER_EVENT, _bind_task_context, _carry_request_id

CARD = "4111 1111 1111 1111"


@pytest.fixture
def lines(capsys):
    """The JSON lines written to stdout so far, parsed."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("web", "DEBUG")
    yield lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logs.clear()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_is_one_json_object_with_the_bound_ids(lines):
    """A line has time, level, logger, message and process, and the ids bound in its context; None is left out."""
    logs.bind(request_id="req-0123456789", transfer_id="tr_" + "a" * 32, task_sid=None)
    logging.getLogger("baton.test").warning("transfer %s moved", "tr_1")
    [line] = lines()
    assert line.pop("time").endswith("Z")
    assert line == {"level": "WARNING", "logger": "baton.test", "message": "transfer tr_1 moved", "process": "web",
                    "request_id": "req-0123456789", "transfer_id": "tr_" + "a" * 32}


def test_card_numbers_are_redacted_from_the_message_the_extras_and_the_traceback(lines):
    """RedactingFilter is on the handler: a card number in a message, an argument, a path or an exception is gone."""
    log = logging.getLogger("baton.test")
    log.info("customer said %s", CARD, extra={"path": f"/v1/transfers/{CARD.replace(' ', '')}", "status": 404})
    try:
        raise ValueError(f"bad card {CARD}")
    except ValueError:
        log.exception("failed")
    text = json.dumps(lines())
    assert "4111" not in text and text.count("[redacted]") == 3


def test_a_request_id_is_taken_from_the_router_or_made(client):
    """Heroku's X-Request-ID is kept and answered back; a missing or odd one is replaced by a new UUID."""
    heroku = "9e3a4a4e-8b8c-4b7b-9d0e-6d6f6a2b1c3d"
    assert client.get("/healthz", headers={"X-Request-ID": heroku}).headers["X-Request-ID"] == heroku
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 36 and made != client.get("/healthz").headers["X-Request-ID"]
    for odd in ("short", "has spaces in it, and more", "x" * 201, "card-4111111111111111"):
        assert request_id_from(odd) != odd


def test_the_request_id_travels_in_the_enqueued_message(client, scenario, redis_url):
    """A transfer request's id is in the headers of the Celery messages it enqueues, and the web's line has it."""
    request_id = "req-travels-0123456789"
    answer = client.post("/v1/transfers", headers={**bearer(scenario.tokens["alice"]), "X-Request-ID": request_id},
                         json={"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"]})
    assert answer.status_code == 202
    broker = redis.Redis.from_url(redis_url)
    messages = [json.loads(raw) for key in celery_queue_lists("celery") for raw in broker.lrange(key, 0, -1)]
    assert messages and {m["headers"][REQUEST_ID_HEADER] for m in messages} == {request_id}


def test_a_task_binds_the_ids_it_carries():
    """Before a task runs, its request id (from the message), transfer, TaskRouter task and event are bound."""
    task = type("Task", (), {"name": TASKROUTER_EVENT, "request": Context({REQUEST_ID_HEADER: "req-from-the-web"})})()
    _bind_task_context(task_id="c0ffee", task=task,
                       args=("tr_1", {"Sid": "EV1", "TaskSid": "WT1", "EventType": "reservation.accepted"}))
    try:
        assert [logs.bound(name) for name in ("request_id", "transfer_id", "task_sid", "event_sid", "celery_task_id")] \
            == ["req-from-the-web", "tr_1", "WT1", "EV1", "c0ffee"]
        headers: dict = {}
        _carry_request_id(headers=headers)  # what the task enqueues carries the same id
        assert headers == {REQUEST_ID_HEADER: "req-from-the-web"}
    finally:
        logs.clear()


def test_a_task_without_a_request_id_gets_one():
    """A task beat started has no request id in its message: it gets a new one, which its own messages carry."""
    task = type("Task", (), {"name": "baton.reconcile", "request": Context({})})()
    _bind_task_context(task_id="c0ffee", task=task, args=())
    try:
        assert len(logs.bound("request_id") or "") == 36 and logs.bound("transfer_id") is None
    finally:
        logs.clear()
