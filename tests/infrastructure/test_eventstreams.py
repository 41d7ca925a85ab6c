"""baton.infrastructure.eventstreams: the sink's credentials, and the one translation from a CloudEvent to the
callback's fields."""

from __future__ import annotations

import json

import pytest

from baton.domain.twilio_events import TRANSFER_EVENTS, event_from_taskrouter
from baton.infrastructure import eventstreams
from baton.infrastructure.config import Config
from baton.infrastructure.eventstreams import MalformedEvent, StreamEvent, cloud_events, read_event

EV, WT, WR, WK, WQ = "EV" + "1" * 32, "WT" + "2" * 32, "WR" + "3" * 32, "WK" + "4" * 32, "WQ" + "5" * 32
ATTRIBUTES = json.dumps({"transfer": {"id": "tr_1"}})
# The payload of Twilio's event-type pages (schema TaskRouter.WDSEvent/4), trimmed to a few fields.
PAYLOAD = {"sid": EV, "eventtype": "reservation.rejected", "account_sid": "AC" + "0" * 32,
           "timestamp": "2026-11-26T15:45:22.764Z", "task_sid": WT, "task_attributes": ATTRIBUTES, "task_age": 3,
           "reservation_sid": WR, "worker_sid": WK, "task_queue_sid": WQ, "task_canceled_reason": None}
EXPECTED = {"EventType": "reservation.rejected", "Sid": EV, "TaskSid": WT, "TaskAttributes": ATTRIBUTES,
            "ReservationSid": WR, "WorkerSid": WK, "TaskQueueSid": WQ, "TimestampMs": "1795707922764"}


def event(data, kind: str = "com.twilio.taskrouter.reservation.rejected", **extra) -> dict:
    return {"specversion": "1.0", "type": kind, "id": "NO" + "9" * 32, "time": "2026-11-26T15:45:22.764Z",
            "data": data, **extra}


@pytest.mark.parametrize("data", [
    {"sid": EV, "name": "ReservationRejected", "product_name": "TaskRouter", "payload": PAYLOAD},
    PAYLOAD,
    {"sid": EV, "payload_type": "application/json", "payload": json.dumps(PAYLOAD)},
], ids=["envelope", "flat", "payload as text"])
def test_each_shape_of_data_gives_the_callbacks_fields(data):
    """The envelope with ``payload`` (Twilio's pages), the fields in ``data``, a payload as JSON text: same fields."""
    assert read_event(event(data)) == StreamEvent("taskrouter", EXPECTED)


def test_the_engine_gets_the_same_event_by_either_path():
    """What the translation gives is what the engine reads from a callback: it cannot tell the path."""
    callback = {"EventType": "reservation.rejected", "Sid": EV, "ReservationSid": WR, "WorkerSid": WK}
    assert event_from_taskrouter(read_event(event(PAYLOAD)).fields) == event_from_taskrouter(callback)


def test_the_type_of_the_cloud_event_names_the_event():
    """``type`` decides (the subscription filtered on it): a payload's ``eventtype`` that disagrees is not read."""
    fields = read_event(event({**PAYLOAD, "eventtype": "reservation.created"},
                              "com.twilio.taskrouter.task-queue.entered")).fields
    assert fields["EventType"] == "task-queue.entered"


def test_the_event_sid_is_the_dedupe_key_and_the_cloud_event_id_stands_in_without_one():
    """TaskRouter's EV sid (the callback's Sid) from the payload or the envelope; else the CloudEvents id."""
    without = {k: v for k, v in PAYLOAD.items() if k != "sid"}
    assert read_event(event({"sid": EV, "payload": without})).fields["Sid"] == EV
    assert read_event(event({"payload": without})).fields["Sid"] == "cloudevent:NO" + "9" * 32
    with pytest.raises(MalformedEvent):
        read_event({"type": "com.twilio.taskrouter.task.canceled", "data": {"payload": without}})


def test_attributes_as_an_object_and_numbers_are_read_as_the_callback_sends_them():
    """A payload whose attributes are an object, or whose time is epoch milliseconds, is still read."""
    fields = read_event(event({**PAYLOAD, "task_attributes": {"transfer": {"id": "tr_1"}},
                               "timestamp": 1795707922764})).fields
    assert json.loads(fields["TaskAttributes"]) == {"transfer": {"id": "tr_1"}}
    assert fields["TimestampMs"] == "1795707922764"


def test_the_cloud_event_time_stands_in_for_a_missing_timestamp():
    fields = read_event(event({k: v for k, v in PAYLOAD.items() if k != "timestamp"})).fields
    assert fields["TimestampMs"] == "1795707922764"
    assert "TimestampMs" not in read_event(event({k: v for k, v in PAYLOAD.items() if k != "timestamp"},
                                                 time="yesterday")).fields


@pytest.mark.parametrize("raw", [
    "text", 3, None, {"data": PAYLOAD}, {"type": "", "data": PAYLOAD},
    {"type": "com.twilio.taskrouter.task.canceled", "data": [PAYLOAD]},
    {"type": "com.twilio.taskrouter.task.canceled", "data": {"payload": "{not json"}},
])
def test_malformed_events_are_named(raw):
    with pytest.raises(MalformedEvent):
        read_event(raw)


def test_other_products_and_test_events():
    """Another product's event is ``other``; a sink's test event carries its test id."""
    assert read_event(event({"messageSid": "SM1"}, "com.twilio.messaging.message.delivered")).kind == "other"
    assert read_event(event({"test_id": "TE1"}, "com.twilio.eventstreams.test-sink")) == StreamEvent("test",
                                                                                                    test_id="TE1")
    assert read_event(event({}, "com.twilio.eventstreams.test-sink")).kind == "other"


def test_a_delivery_is_a_batch_or_one_event():
    assert cloud_events([1, 2]) == [1, 2]
    assert cloud_events({"type": "x"}) == [{"type": "x"}]
    with pytest.raises(MalformedEvent):
        cloud_events("x")


def test_the_subscription_is_exactly_batons_events():
    assert {t.removeprefix("com.twilio.taskrouter.") for t in eventstreams.SUBSCRIBED_TYPES} == TRANSFER_EVENTS


def test_credentials_are_derived_per_deployment_and_sit_in_the_destination():
    """The same for setup and every web process; another public URL or auth token gives others; URL-safe."""
    config = Config(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="token", twilio_workspace_sid="WS" + "0" * 32,
                    transfer_workflow_sid="WW" + "0" * 32, public_base_url="https://baton.example.com")
    user, password = eventstreams.sink_credentials("token", "https://baton.example.com")
    # The derivation is pinned: another one would make every deployment's sink look stale to setup.
    assert (user, password) == ("baton", "7a3d4f92bb1e6c4de4dca2c92d407f48fd5674bd")
    assert password != eventstreams.sink_credentials("token", "https://staging.example.com")[1]
    assert password != eventstreams.sink_credentials("rotated", "https://baton.example.com")[1]
    assert len(password) == 40 and password.isalnum()
    destination = eventstreams.sink_destination(config)
    assert destination == f"https://baton:{password}@baton.example.com/webhooks/event-streams"
    assert eventstreams.userinfo(destination) == (user, password)
    assert eventstreams.without_userinfo(destination) == "https://baton.example.com/webhooks/event-streams"


def test_waiting_for_a_test_event(store):
    """A test event recorded at or after ``since`` (a little clock skew allowed) is found; an older one is not."""
    now = [1000.0]
    assert eventstreams.wait_for_sink_test(store, 999, 0.3, clock=lambda: now[0],
                                           sleep=lambda s: now.__setitem__(0, now[0] + s)) is None
    eventstreams.record_sink_test(store, "TE-old", 900.0)
    eventstreams.record_sink_test(store, "TE-new", 998.5)
    assert eventstreams.wait_for_sink_test(store, 1000.0, 0, clock=lambda: now[0]) == "TE-new"
    assert eventstreams.wait_for_sink_test(store, 1010.0, 0, clock=lambda: now[0]) is None
    store.redis.set(store.prefix + eventstreams.SINK_TEST_KEY, "garbage")
    assert eventstreams.last_sink_test(store) is None
