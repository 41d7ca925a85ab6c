"""Twilio's webhooks: signatures against PUBLIC_BASE_URL, events of transfers enqueued once, others dropped cheaply."""

from __future__ import annotations

import json
import logging

import pytest
from edge_support import PUBLIC_BASE_URL, payload, signature

from baton import transfers as t
from baton.store import Record
from workers.celery_app import TASKROUTER_EVENT

TRANSFER_ID = "tr_3f1c0e5a9b7d4c2e8a6f1b0d9c7e5a31"  # in the captured payloads' TaskAttributes


@pytest.fixture
def post_signed(client, scenario):
    """Post a form to a webhook path, signed as Twilio signs it for the public URL (or for ``url``)."""
    def post(path: str, form: dict[str, str], url: str | None = None, query: str = ""):
        signed = signature(scenario.auth_token, (url or PUBLIC_BASE_URL + path) + query, form)
        return client.post(path + query, data=form, headers={"X-Twilio-Signature": signed})
    return post


def test_an_event_of_a_transfer_is_enqueued_once_however_often_delivered(post_signed, jobs):
    """A reservation.created of a transfer's task delivered three times is answered 204 each time and enqueued once."""
    event = payload("taskrouter/reservation_created")
    for _ in range(3):
        response = post_signed("/webhooks/taskrouter", event)
        assert response.status_code == 204 and response.content_type == "application/json"
    (job,) = jobs()
    assert job.name == TASKROUTER_EVENT
    assert job.args == [TRANSFER_ID, {name: event[name] for name in (
        "EventType", "Sid", "TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "TimestampMs")}]


def test_the_signature_is_checked_against_the_public_url(post_signed, jobs):
    """A signature for PUBLIC_BASE_URL validates although the app sees http://localhost; one for that URL does not."""
    event = payload("taskrouter/reservation_created")
    refused = post_signed("/webhooks/taskrouter", event, url="http://localhost/webhooks/taskrouter")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invalid_signature"
    assert post_signed("/webhooks/taskrouter", event).status_code == 204
    assert len(jobs()) == 1


def test_a_query_string_is_part_of_the_signed_url(post_signed):
    """A callback URL with a query string is verified with that query string."""
    response = post_signed("/webhooks/taskrouter", payload("taskrouter/reservation_created"), query="?env=prod")
    assert response.status_code == 204


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
def test_an_unsigned_or_badly_signed_event_is_refused(client, headers, jobs):
    """No X-Twilio-Signature, or a wrong one, is a 403 invalid_signature and nothing is enqueued."""
    response = client.post("/webhooks/taskrouter", data=payload("taskrouter/reservation_created"), headers=headers)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "invalid_signature"
    assert jobs() == []


def test_a_tampered_form_is_refused(client, scenario, jobs):
    """A form changed after Twilio signed it is a 403."""
    event = payload("taskrouter/reservation_created")
    signed = signature(scenario.auth_token, PUBLIC_BASE_URL + "/webhooks/taskrouter", event)
    response = client.post("/webhooks/taskrouter", data={**event, "EventType": "reservation.accepted"},
                           headers={"X-Twilio-Signature": signed})
    assert response.status_code == 403 and jobs() == []


@pytest.mark.parametrize("name, change", [
    ("taskrouter/reservation_accepted_not_a_transfer", {}),
    ("taskrouter/workflow_target_matched", {}),
    ("taskrouter/reservation_created", {"TaskAttributes": json.dumps({"transfer": "tr_1"})}),
    ("taskrouter/reservation_created", {"TaskAttributes": "not json"}),
])
def test_an_event_baton_does_not_act_on_is_answered_without_touching_redis(post_signed, store, name, change):
    """An event of another task, or of a type the engine ignores, is a 204 that writes nothing to Redis."""
    before = store.redis.dbsize()
    assert post_signed("/webhooks/taskrouter", {**payload(name), **change}).status_code == 204
    assert store.redis.dbsize() == before


def test_events_about_no_transfer_are_logged_at_debug_and_the_others_at_info(post_signed, caplog):
    """Most of the stream is about other tasks: its request lines are DEBUG; a transfer's event, and any
    refusal, stay INFO."""
    caplog.set_level(logging.DEBUG, logger="baton.requests")
    post_signed("/webhooks/taskrouter", payload("taskrouter/reservation_accepted_not_a_transfer"))
    post_signed("/webhooks/taskrouter", payload("taskrouter/reservation_created"))
    post_signed("/webhooks/taskrouter", {**payload("taskrouter/reservation_accepted_not_a_transfer"), "Sid": ""})
    lines = [(record.levelno, record.status) for record in caplog.records if record.name == "baton.requests"]
    assert lines == [(logging.DEBUG, 204), (logging.INFO, 204), (logging.INFO, 400)]


@pytest.mark.parametrize("missing", ["EventType", "Sid"])
def test_an_event_without_its_type_or_sid_is_refused(post_signed, jobs, missing):
    """A signed TaskRouter event without EventType or Sid is a 400 naming the field."""
    event = {key: value for key, value in payload("taskrouter/reservation_created").items() if key != missing}
    response = post_signed("/webhooks/taskrouter", event)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == missing
    assert jobs() == []


def test_a_conversations_event_is_acknowledged(post_signed):
    """A signed Conversations post-event webhook is answered 200 with {}."""
    response = post_signed("/webhooks/conversations", payload("conversations/on_message_added"))
    assert response.status_code == 200 and response.get_json() == {}


def test_a_conversations_event_is_verified_and_validated(client, post_signed):
    """The Conversations webhook refuses a bad signature (403) and a form without EventType (400)."""
    event = payload("conversations/on_message_added")
    assert client.post("/webhooks/conversations", data=event).status_code == 403
    response = post_signed("/webhooks/conversations", {k: v for k, v in event.items() if k != "EventType"})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "EventType"


def test_an_event_that_could_not_be_enqueued_is_processed_when_twilio_sends_it_again(post_signed, jobs, monkeypatch):
    """When enqueueing fails the event is answered 5xx and not marked seen, so Twilio's retry is enqueued."""
    import app.webhooks

    event = payload("taskrouter/reservation_created")
    real_send = app.webhooks.send_job

    def broker_away(*args, **kwargs):
        raise ConnectionError("broker away")

    monkeypatch.setattr(app.webhooks, "send_job", broker_away)
    assert post_signed("/webhooks/taskrouter", event).status_code >= 500
    monkeypatch.setattr(app.webhooks, "send_job", real_send)
    assert post_signed("/webhooks/taskrouter", event).status_code == 204
    assert len(jobs()) == 1


def test_a_participant_removed_is_enqueued_once_per_transfer_however_often_delivered(post_signed, jobs, store):
    """Conversations events carry no event sid: the same removal delivered (or replayed) three times is
    enqueued once for the conversation's transfer; the removal of another participant is another event."""
    event = payload("conversations/on_participant_removed")
    transfer = t.Transfer(id="tr_conversation_dedupe", from_task_sid="WT" + "5" * 32, from_worker_sid="WK" + "5" * 32,
                          target_type="worker", target_sid="WK" + "6" * 32, conversation_sid=event["ConversationSid"])
    store.create(Record(transfer))
    for _ in range(3):
        assert post_signed("/webhooks/conversations", event).status_code == 200
    post_signed("/webhooks/conversations", {**event, "ParticipantSid": "MB" + "2" * 32})

    enqueued = jobs()
    assert [job.args[0] for job in enqueued] == ["tr_conversation_dedupe", "tr_conversation_dedupe"]
    assert [job.args[1]["ParticipantSid"] for job in enqueued] == [event["ParticipantSid"], "MB" + "2" * 32]
    assert "Identity" not in enqueued[0].args[1]
