"""Event Streams, simulated: Sinks, Subscriptions and SubscribedEvents checked against twilio_events_v1, and the
delivery of TaskRouter's events to webhook sinks as batched CloudEvents, under each reading of the profile."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from support.simulator import wait_until
from twilio.request_validator import RequestValidator

from simulator.profiles import READINGS

TASK_CREATED = "com.twilio.taskrouter.task.created"
TASK_CANCELED = "com.twilio.taskrouter.task.canceled"


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        decoded = json.loads(self.body)
        return decoded if isinstance(decoded, list) else [decoded]


class Sink:
    """A local webhook sink: records every POST and answers ``status``."""

    def __init__(self):
        self.posts: list[Post] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append(Post(self.path, dict(self.headers), body))
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for post in list(self.posts) for e in post.events if event_type is None or e["type"] == event_type]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sink():
    receiver = Sink()
    yield receiver
    receiver.stop()


def create_sink(api, url: str, **configuration) -> requests.Response:
    return api.post("events", "/v1/Sinks", data={
        "Description": "Baton", "SinkType": "webhook",
        "SinkConfiguration": json.dumps({"destination": url, "method": "POST", **configuration})})


def subscribe(api, sink_sid: str, *types: str) -> requests.Response:
    return api.post("events", "/v1/Subscriptions", data={
        "Description": "Baton's events", "SinkSid": sink_sid, "Types": [json.dumps({"type": t}) for t in types]})


def streamed(api, sink, *types: str, **configuration) -> str:
    """A sink on ``sink`` with user:secret in its URL, active, subscribed to ``types``; its sid."""
    destination = sink.url.replace("http://", "http://user:secret@") + "/events"
    created = create_sink(api, destination, **configuration).json()
    assert subscribe(api, created["sid"], *types).status_code == 201
    return created["sid"]


def new_task(sim, world, **attributes):
    return sim.taskrouter.create_task(world.workspace_sid, attributes=attributes or {"kind": "test"},
                                      workflow_sid=world.workflow_sid)


# REST, against the description


def test_a_webhook_sink_is_created_active_and_read_back_in_twilios_shape(api, sink):
    """Documented reading: active at once. The resource carries exactly the description's properties."""
    response = create_sink(api, sink.url + "/events", batch_events=True)
    assert response.status_code == 201
    created = response.json()
    assert created["sid"].startswith("DG") and created["status"] == "active" and created["sink_type"] == "webhook"
    assert created["sink_configuration"] == {"destination": sink.url + "/events", "method": "POST",
                                             "batch_events": True}
    assert set(created) == {"date_created", "date_updated", "description", "sid", "sink_configuration", "sink_type",
                            "status", "url", "links"}
    assert created["links"]["sink_test"].endswith(f"/Sinks/{created['sid']}/Test")
    assert api.get("events", f"/v1/Sinks/{created['sid']}").json() == created
    assert [s["sid"] for s in api.get("events", "/v1/Sinks", params={"Status": "active"}).json()["sinks"]] == [
        created["sid"]]
    assert api.get("events", "/v1/Sinks", params={"InUse": "true"}).json()["sinks"] == []


@pytest.mark.parametrize("configuration, message", [
    ({"destination": "not a url", "method": "POST"}, "destination"),
    ({"destination": "https://example.com/e", "method": "PUT"}, "method"),
    ({"destination": "https://example.com/e", "method": "POST", "batch_events": "yes"}, "batch_events"),
])
def test_a_webhook_sink_needs_a_destination_and_a_method(api, configuration, message):
    response = api.post("events", "/v1/Sinks", data={"Description": "x", "SinkType": "webhook",
                                                     "SinkConfiguration": json.dumps(configuration)})
    assert response.status_code == 400 and message in response.json()["message"]


def test_the_description_bounds_what_a_request_may_say(api, sink):
    """An unknown SinkType, a configuration that is not JSON, a sink updated beyond its description: refused."""
    bad_type = api.post("events", "/v1/Sinks", data={"Description": "x", "SinkType": "ftp", "SinkConfiguration": "{}"})
    not_json = api.post("events", "/v1/Sinks", data={"Description": "x", "SinkType": "webhook",
                                                     "SinkConfiguration": "{"})
    sid = create_sink(api, sink.url).json()["sid"]
    moved = api.post("events", f"/v1/Sinks/{sid}", data={"Description": "y", "SinkConfiguration": "{}"})
    renamed = api.post("events", f"/v1/Sinks/{sid}", data={"Description": "y"})
    assert [r.status_code for r in (bad_type, not_json, moved, renamed)] == [400, 400, 400, 200]
    assert renamed.json()["description"] == "y"
    assert api.get("events", "/v1/Sinks/DGnotasid").status_code == 404


def test_subscriptions_and_their_types(api, sink):
    """Types as JSON objects (the schema version left out: the newest); SubscribedEvents added, read, updated and
    removed; the last type, an unknown type, and a sink in use cannot go."""
    sink_sid = create_sink(api, sink.url).json()["sid"]
    created = subscribe(api, sink_sid, TASK_CREATED, TASK_CANCELED)
    assert created.status_code == 201
    sub = created.json()["sid"]
    assert sub.startswith("DF") and created.json()["sink_sid"] == sink_sid
    events = f"/v1/Subscriptions/{sub}/SubscribedEvents"
    assert [(t["type"], t["schema_version"]) for t in api.get("events", events).json()["types"]] == [
        (TASK_CREATED, 4), (TASK_CANCELED, 4)]
    added = api.post("events", events, data={"Type": "com.twilio.taskrouter.workflow.timeout", "SchemaVersion": "2"})
    assert added.status_code == 201 and added.json()["schema_version"] == 2
    assert api.post("events", events, data={"Type": TASK_CREATED}).status_code == 200  # already there
    assert api.post("events", f"{events}/{TASK_CREATED}", data={"SchemaVersion": "3"}).json()["schema_version"] == 3
    assert api.delete("events", f"{events}/{TASK_CANCELED}").status_code == 204
    assert api.get("events", f"{events}/{TASK_CANCELED}").status_code == 404
    assert api.post("events", events, data={"Type": "com.twilio.taskrouter.nothing"}).status_code == 400
    assert subscribe(api, sink_sid, "com.twilio.messaging.message.sent").status_code == 400
    assert api.get("events", "/v1/Subscriptions", params={"SinkSid": sink_sid}).json()["subscriptions"][0]["sid"] == sub
    assert api.delete("events", f"/v1/Sinks/{sink_sid}").status_code == 400
    api.delete("events", f"{events}/com.twilio.taskrouter.workflow.timeout")
    assert api.delete("events", f"{events}/{TASK_CREATED}").status_code == 400  # the last one
    assert api.delete("events", f"/v1/Subscriptions/{sub}").status_code == 204
    assert api.delete("events", f"/v1/Sinks/{sink_sid}").status_code == 204


def test_the_twilio_sdk_drives_it(client, sink):
    """The SDK's own calls (types serialized as it serializes them) work against the simulator."""
    created = client.events.v1.sinks.create(description="Baton", sink_type="webhook",
                                            sink_configuration={"destination": sink.url, "method": "POST"})
    subscription = client.events.v1.subscriptions.create(description="Baton", sink_sid=created.sid,
                                                         types=[{"type": TASK_CREATED, "schema_version": 1}])
    (event,) = client.events.v1.subscriptions(subscription.sid).subscribed_events.list()
    assert (event.type, event.schema_version) == (TASK_CREATED, 1)
    assert client.events.v1.sinks(created.sid).sink_test.create().result == "submitted"
    assert client.events.v1.sinks(created.sid).sink_validate.create(test_id="TE-anything").result == "valid"


# Delivery


def test_subscribed_events_reach_an_active_sink_as_batched_cloud_events(sim, api, sink, world):
    """Only the subscribed types, batched, with HTTP Basic from the sink URL's user info on every request, and
    ``data`` as Twilio's event-type pages show it: an envelope whose ``payload`` holds the snake_case fields."""
    streamed(api, sink, TASK_CREATED, TASK_CANCELED)
    task = new_task(sim, world, transfer={"id": "tr_1"})
    sim.taskrouter.cancel_task(world.workspace_sid, task.sid, "enough")

    (created,) = wait_until(lambda: sink.events(TASK_CREATED))
    (canceled,) = wait_until(lambda: sink.events(TASK_CANCELED))
    assert {e["type"] for e in sink.events()} == {TASK_CREATED, TASK_CANCELED}
    assert all(post.path.startswith("/events?bodySHA256=") for post in sink.posts)
    assert all(post.headers["Authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()
               for post in sink.posts)
    assert json.loads(sink.posts[0].body)[0]["specversion"] == "1.0"
    payload = canceled["data"]["payload"]
    callback = next(e for e in sim.taskrouter.events(world.workspace_sid) if e.event_type == "task.canceled")
    assert canceled["data"]["sid"] == payload["sid"] == callback.sid
    assert not canceled["id"].startswith("EV")
    assert payload["eventtype"] == "task.canceled" and payload["task_sid"] == task.sid
    assert payload["task_canceled_reason"] == "enough"
    assert json.loads(payload["task_attributes"]) == {"transfer": {"id": "tr_1"}}
    assert canceled["dataschema"] == "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4"
    assert canceled["data"]["product_name"] == "TaskRouter" and canceled["data"]["name"] == "TaskCanceled"
    assert created["time"].endswith("Z") and payload["timestamp"] == canceled["time"]


def test_the_flat_reading_puts_the_fields_in_data(sim, api, sink, world):
    sim.profile.update(event_streams_data="flat")
    streamed(api, sink, TASK_CREATED)
    task = new_task(sim, world)
    (event,) = wait_until(lambda: sink.events(TASK_CREATED))
    assert event["data"]["task_sid"] == task.sid and "payload" not in event["data"]


def test_a_sink_without_batching_gets_one_event_per_request(sim, api, sink, world):
    streamed(api, sink, TASK_CREATED, TASK_CANCELED, batch_events=False)
    task = new_task(sim, world)
    sim.taskrouter.cancel_task(world.workspace_sid, task.sid, "enough")
    wait_until(lambda: len(sink.posts) == 2)
    assert all(isinstance(json.loads(post.body), dict) for post in sink.posts)


def test_events_wait_for_a_batch_window_and_go_together(sim, api, sink, world):
    """Events within the window share one POST; max_batch splits a larger batch."""
    sim.events.batch_window_s, sim.events.max_batch = 0.3, 2
    streamed(api, sink, TASK_CREATED)
    for _ in range(3):
        new_task(sim, world)
    wait_until(lambda: len(sink.events(TASK_CREATED)) == 3)
    assert sorted(len(post.events) for post in sink.posts) == [1, 2]


@pytest.mark.parametrize("reading", READINGS["event_streams_signature"])
def test_each_reading_of_the_signature(sim, api, sink, world, reading):
    """body_sha256: the URL gets bodySHA256 and is signed as Twilio signs a JSON body (the SDK's validator agrees);
    url_and_body: the URL followed by the body is signed; none: no signature."""
    sim.profile.update(event_streams_signature=reading)
    streamed(api, sink, TASK_CREATED)
    new_task(sim, world)
    (post,) = wait_until(lambda: sink.posts)
    signature = post.headers.get("X-Twilio-Signature")
    url = sink.url + post.path
    if reading == "body_sha256":
        assert post.path == "/events?bodySHA256=" + hashlib.sha256(post.body).hexdigest()
        assert RequestValidator(sim.auth_token).validate(url, post.body.decode(), signature)
    elif reading == "url_and_body":
        assert post.path == "/events"
        expected = hmac.new(sim.auth_token.encode(), (url + post.body.decode()).encode(), hashlib.sha1).digest()
        assert signature == base64.b64encode(expected).decode()
    else:
        assert signature is None


def test_duplicated_delayed_and_reordered_batches(sim, api, sink, world):
    """The dispatcher's copies and jitter apply to batches; redeliver_after_s sends every batch once more, late."""
    streamed(api, sink, TASK_CREATED)
    sim.dispatcher.copies, sim.dispatcher.jitter_s = 3, 0.05
    try:
        first = new_task(sim, world)
        wait_until(lambda: len(sink.events(TASK_CREATED)) == 3)
        assert {e["data"]["payload"]["task_sid"] for e in sink.events()} == {first.sid}
    finally:
        sim.dispatcher.copies, sim.dispatcher.jitter_s = 1, 0.0
    sim.events.redeliver_after_s = 0.3
    late = new_task(sim, world)
    wait_until(lambda: len([e for e in sink.events() if e["data"]["payload"]["task_sid"] == late.sid]) == 2)
    copies = [p for p in sink.posts if any(e["data"]["payload"]["task_sid"] == late.sid for e in p.events)]
    assert copies[0].body == copies[1].body


def test_a_dropped_event_is_recorded_and_not_sent(sim, api, sink, world):
    streamed(api, sink, TASK_CREATED)
    sim.dispatcher.drop = lambda url, fields: True
    task = new_task(sim, world)
    wait_until(lambda: [d for d in sim.dispatcher.deliveries if d.dropped and d.events])
    time.sleep(0.1)
    assert sink.posts == []
    (dropped,) = [d for d in sim.events.deliveries() if d.dropped]
    assert dropped.events[0]["data"]["payload"]["task_sid"] == task.sid


def test_the_control_api_sets_batching_and_late_copies(sim):
    url = f"{sim.url}/_sim/events/delivery"
    assert requests.get(url).json() == {"batch_window_s": 0.02, "max_batch": 50, "redeliver_after_s": None}
    changed = requests.post(url, json={"max_batch": 10, "redeliver_after_s": 2}).json()
    assert changed == {"batch_window_s": 0.02, "max_batch": 10, "redeliver_after_s": 2.0}
    assert requests.post(url, json={"max_batch": 0}).status_code == 400
    assert requests.post(url, json={"redeliver_after_s": None}).json()["redeliver_after_s"] is None


# Validation of a sink, under each reading


def test_a_sink_to_validate_takes_its_test_events_id_before_any_subscription(sim, api, sink):
    """test_and_validate: initialized; subscriptions refused; Test sends a test event (validating); Validate with
    another id is refused, with the id the sink received it is active; subscriptions then go."""
    sim.profile.update(sink_validation="test_and_validate")
    sink_sid = create_sink(api, sink.url + "/events").json()["sid"]
    assert api.get("events", f"/v1/Sinks/{sink_sid}").json()["status"] == "initialized"
    assert subscribe(api, sink_sid, TASK_CREATED).status_code == 400

    assert api.post("events", f"/v1/Sinks/{sink_sid}/Test").json() == {"result": "submitted"}
    (test,) = wait_until(lambda: sink.events("com.twilio.eventstreams.test-sink"))
    assert api.get("events", f"/v1/Sinks/{sink_sid}").json()["status"] == "validating"
    assert api.post("events", f"/v1/Sinks/{sink_sid}/Validate", data={"TestId": "TE-other"}).status_code == 400
    test_id = test["data"]["test_id"]
    wait_until(lambda: test_id in sim.events.sink(sink_sid).received_tests)
    validated = api.post("events", f"/v1/Sinks/{sink_sid}/Validate", data={"TestId": test_id})
    assert validated.status_code == 201 and validated.json() == {"result": "valid"}
    assert api.get("events", f"/v1/Sinks/{sink_sid}").json()["status"] == "active"
    assert subscribe(api, sink_sid, TASK_CREATED).status_code == 201


def test_a_test_event_the_sink_refused_does_not_validate_it(sim, api, sink):
    sim.profile.update(sink_validation="test_and_validate")
    sink.status = 401
    sink_sid = create_sink(api, sink.url).json()["sid"]
    api.post("events", f"/v1/Sinks/{sink_sid}/Test")
    (test,) = wait_until(lambda: sink.events("com.twilio.eventstreams.test-sink"))
    assert sim.dispatcher.wait_idle()
    response = api.post("events", f"/v1/Sinks/{sink_sid}/Validate", data={"TestId": test["data"]["test_id"]})
    assert response.status_code == 400


def test_an_inactive_sink_gets_nothing(sim, api, sink, world):
    sim.profile.update(sink_validation="test_and_validate")
    sink_sid = create_sink(api, sink.url).json()["sid"]
    sim.events.activate(sink_sid)
    assert subscribe(api, sink_sid, TASK_CREATED).status_code == 201
    sim.events.sink(sink_sid).status = "failed"
    new_task(sim, world)
    time.sleep(0.2)
    assert sink.posts == []
