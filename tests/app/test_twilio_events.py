"""Twilio's events, one table (baton.domain.twilio_events): every type has its captured fields, the table says what the
engine makes of them, and the webhooks deliver exactly the events the table hands to the engine."""

from __future__ import annotations

import json
import logging

import pytest
from support.edge import FIXTURES, PUBLIC_BASE_URL, payload, signature

from baton.domain import transfers as t
from baton.domain.twilio_events import (
    CONVERSATIONS_HANDLERS,
    IGNORED_CONVERSATIONS_EVENTS,
    IGNORED_TASKROUTER_EVENTS,
    TASKROUTER_HANDLERS,
    event_from_conversations,
    event_from_taskrouter,
)
from baton.infrastructure.store import Record
from workers.celery_app import TRANSFER_INBOX

TABLE_FIXTURES = FIXTURES / "twilio_events"
TASKROUTER_TYPES = sorted(TASKROUTER_HANDLERS.keys() | IGNORED_TASKROUTER_EVENTS)
CONVERSATIONS_TYPES = sorted(CONVERSATIONS_HANDLERS.keys() | IGNORED_CONVERSATIONS_EVENTS)

# The sids in the fixtures: the offer of a transfer's new task to Carol, in the Everyone queue.
RESERVATION, CAROL, EVERYONE = ("WR659f9864819e067bfe3f39019584d5c7", "WK6c521e06c8e6b6e05c8710cba3a55c22",
                                "WQ8e4629e6bfd1b1a596963e8cbc05dd45")
TRANSFER_ID = "tr_3f1c0e5a9b7d4c2e8a6f1b0d9c7e5a31"

# What the engine gets of each type the table handles; every other type gives nothing.
ENGINE_EVENTS = {
    "reservation.created": t.ReservationCreated(RESERVATION, CAROL),
    "reservation.accepted": t.ReservationAccepted(RESERVATION, CAROL),
    "reservation.rejected": t.ReservationEnded(RESERVATION, CAROL, "rejected"),
    "reservation.timeout": t.ReservationEnded(RESERVATION, CAROL, "timeout"),
    "reservation.rescinded": t.ReservationEnded(RESERVATION, CAROL, "rescinded"),
    "reservation.canceled": t.ReservationEnded(RESERVATION, CAROL, "canceled"),
    "task-queue.entered": t.TaskQueueEntered(EVERYONE),
    "workflow.timeout": t.WorkflowTimedOut(),
    "task.canceled": t.NewTaskEnded("task.canceled", "Task TTL Exceeded"),
    "task.deleted": t.NewTaskEnded("task.deleted", None),
    "task.system-deleted": t.NewTaskEnded("task.system-deleted", "Task TTL Exceeded"),
    "onConversationStateUpdated": t.ConversationClosed(),
    "onParticipantRemoved": t.ParticipantLeft("MB7a1e3c5b9d2f4e6a8c0b1d3f5e7a9c1b"),
}


def fixture(source: str, event_type: str) -> dict[str, str]:
    return payload(f"twilio_events/{source}/{event_type}")


@pytest.mark.parametrize("event_type", TASKROUTER_TYPES)
def test_each_taskrouter_event_type_gives_the_engine_its_event_or_nothing(event_type):
    """A TaskRouter event the table handles becomes its state machine event; an ignored one becomes None."""
    assert (event_type in TASKROUTER_HANDLERS) == (event_type in ENGINE_EVENTS)
    assert event_from_taskrouter(fixture("taskrouter", event_type)) == ENGINE_EVENTS.get(event_type)


@pytest.mark.parametrize("event_type", CONVERSATIONS_TYPES)
def test_each_conversations_event_type_gives_the_engine_its_event_or_nothing(event_type):
    """A Conversations event the table handles becomes its state machine event; an ignored one becomes None."""
    assert (event_type in CONVERSATIONS_HANDLERS) == (event_type in ENGINE_EVENTS)
    assert event_from_conversations(fixture("conversations", event_type)) == ENGINE_EVENTS.get(event_type)


@pytest.mark.parametrize(("source", "handled", "ignored"), [
    ("taskrouter", TASKROUTER_HANDLERS, IGNORED_TASKROUTER_EVENTS),
    ("conversations", CONVERSATIONS_HANDLERS, IGNORED_CONVERSATIONS_EVENTS),
])
def test_every_type_of_the_table_has_one_fixture_and_every_fixture_is_in_the_table(source, handled, ignored):
    """The fixture files of a source are named by exactly the types its table handles or ignores, no type in both,
    and each file is an event of the type it is named after."""
    assert not handled.keys() & ignored
    files = sorted((TABLE_FIXTURES / source).glob("*.json"))
    assert {path.name.removesuffix(".json") for path in files} == handled.keys() | ignored
    assert all(json.loads(path.read_text())["EventType"] == path.name.removesuffix(".json") for path in files)


@pytest.mark.parametrize(("event_type", "change"), [
    ("onConversationStateUpdated", {"StateFrom": "active", "StateTo": "inactive"}),
    ("onParticipantRemoved", {"ParticipantSid": ""}),
])
def test_a_handled_conversations_event_that_ends_nothing_gives_nothing(event_type, change):
    """A conversation that becomes inactive (not closed), or a removal naming no participant, moves no transfer."""
    assert event_from_conversations({**fixture("conversations", event_type), **change}) is None


# Through the webhooks


@pytest.fixture
def post_signed(client, scenario):
    """Post a form to a webhook path, signed as Twilio signs it for the public URL."""
    def post(path: str, form: dict[str, str]):
        return client.post(path, data=form,
                           headers={"X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + path, form)})
    return post


@pytest.mark.parametrize("event_type", TASKROUTER_TYPES)
def test_the_taskrouter_webhook_delivers_exactly_the_types_the_table_handles(post_signed, jobs, inbox, event_type):
    """Each type's event about a transfer's new task is answered 204, and delivered to the transfer's inbox (its
    job enqueued) only when the table hands it to the engine."""
    event = fixture("taskrouter", event_type)
    assert post_signed("/webhooks/taskrouter", event).status_code == 204
    handled = event_type in TASKROUTER_HANDLERS
    assert [(job.name, job.args) for job in jobs()] == ([(TRANSFER_INBOX, [TRANSFER_ID])] if handled else [])
    assert [(delivery["source"], delivery["fields"]["Sid"]) for delivery in inbox(TRANSFER_ID)] == (
        [("taskrouter", event["Sid"])] if handled else [])


@pytest.mark.parametrize("event_type", CONVERSATIONS_TYPES)
def test_the_conversations_webhook_delivers_exactly_the_events_the_table_hands_to_the_engine(post_signed, jobs,
                                                                                           inbox, store, event_type):
    """Each type's event about a conversation with a transfer in progress is answered 200 ``{}``, and delivered to
    that transfer's inbox (its job enqueued) only when the table makes an engine event of it."""
    event = fixture("conversations", event_type)
    if "ConversationSid" in event:
        store.create(Record(t.Transfer(id="tr_of_the_conversation", from_task_sid="WT" + "5" * 32,
                                       from_worker_sid="WK" + "5" * 32, target_type="worker",
                                       target_sid="WK" + "6" * 32, conversation_sid=event["ConversationSid"])))
    response = post_signed("/webhooks/conversations", event)
    assert response.status_code == 200 and response.get_json() == {}
    handled = event_type in ENGINE_EVENTS
    assert [(job.name, job.args) for job in jobs()] == ([(TRANSFER_INBOX, ["tr_of_the_conversation"])] if handled
                                                        else [])
    assert [delivery["source"] for delivery in inbox("tr_of_the_conversation")] == (
        ["conversations"] if handled else [])


def test_a_participant_removal_naming_no_participant_is_not_delivered(post_signed, jobs, inbox, store):
    """The edge delivers what the engine would act on: an onParticipantRemoved without ParticipantSid is not, even
    for a conversation with a transfer in progress."""
    event = {**fixture("conversations", "onParticipantRemoved"), "ParticipantSid": ""}
    store.create(Record(t.Transfer(id="tr_of_the_conversation", from_task_sid="WT" + "5" * 32,
                                   from_worker_sid="WK" + "5" * 32, target_type="worker", target_sid="WK" + "6" * 32,
                                   conversation_sid=event["ConversationSid"])))
    assert post_signed("/webhooks/conversations", event).status_code == 200
    assert jobs() == [] and inbox("tr_of_the_conversation") == []


@pytest.mark.parametrize(("path", "event", "status"), [
    ("/webhooks/taskrouter", {**fixture("taskrouter", "task.updated"), "EventType": "task.teleported"}, 204),
    ("/webhooks/conversations", {**fixture("conversations", "onMessageAdded"), "EventType": "onMessageBeamed"}, 200),
])
def test_a_type_in_neither_list_is_acknowledged_and_logged(post_signed, jobs, caplog, path, event, status):
    """An event type Twilio added since the table was written is answered like an ignored one, and its type logged."""
    caplog.set_level(logging.INFO, logger="app.webhooks")
    assert post_signed(path, event).status_code == status
    assert jobs() == []
    (line,) = [record.getMessage() for record in caplog.records if record.name == "app.webhooks"]
    assert repr(event["EventType"]) in line


def test_an_ignored_type_is_not_logged(post_signed, caplog):
    """The types the table ignores on purpose leave no log line of the webhook's own."""
    caplog.set_level(logging.DEBUG, logger="app.webhooks")
    assert post_signed("/webhooks/taskrouter", fixture("taskrouter", "worker.activity.update")).status_code == 204
    assert [record for record in caplog.records if record.name == "app.webhooks"] == []
