"""Event Streams, simulated: Sinks, Subscriptions and their SubscribedEvents, and the delivery of
TaskRouter's events to webhook sinks as batched CloudEvents.

The REST operations are those of Twilio's ``twilio_events_v1`` description (``events.twilio.com/v1``),
checked against it by the server like every other product. The simulated TaskRouter hands every event
to `Events` (a listener: whatever the workspace's ``EventCallbackUrl`` and ``EventsFilter``), and each
subscription naming its type (``com.twilio.taskrouter.`` and TaskRouter's event type) adds a
CloudEvent to its sink's next batch. A batch leaves ``batch_window_s`` real seconds after its first
event, or at once when ``max_batch`` events wait, as one POST of a JSON array (one POST per event
when the sink's ``batch_events`` is false), through the simulator's webhook dispatcher: its
``copies`` and ``jitter_s`` duplicate, delay and reorder batches, and its ``drop`` predicate loses
single events (asked per event, before batching). ``redeliver_after_s`` sends every batch once more
that many real seconds later, as Twilio's retries do for hours (docs/twilio-behaviour.md §14).

Where Twilio's documentation leaves Event Streams open, the profile says what is played
(`simulator.profiles`): the shape of ``data`` (``event_streams_data``), the signature
(``event_streams_signature``) and whether a sink must be validated first (``sink_validation``).
What the simulator does besides, and no document says:

- Only webhook sinks with method POST receive events; kinesis, segment and email sinks are kept, never
  delivered to. A sink that is not ``active`` receives nothing.
- Each subscription delivers its own copy of an event (same TaskRouter ``sid``, its own CloudEvents
  ``id``): two subscriptions of one sink to one type deliver it twice.
- A sink used by a subscription cannot be deleted (400), nor can a subscription's last type.
- The test event of ``POST /Sinks/{DG}/Test`` is ``com.twilio.eventstreams.test-sink`` with
  ``data.test_id`` [UNVERIFIED name and shape], sent at once, unbatched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simulator.core import (
    ApiRequest,
    ApiResult,
    Clock,
    Delivery,
    Handler,
    SimError,
    WebhookDispatcher,
    invalid,
    iso_date,
    new_sid,
    not_found,
)
from simulator.profiles import Profile
from simulator.taskrouter import TaskRouter

BASE_URL = "https://events.twilio.com/v1"
TASKROUTER_TYPE_PREFIX = "com.twilio.taskrouter."
TEST_EVENT_TYPE = "com.twilio.eventstreams.test-sink"
DATASCHEMA = "https://events-schemas.twilio.com/TaskRouter.WDSEvent/{version}"
# The schema versions of TaskRouter's events (version 2 added worker_time_in_previous_activity_ms; the
# event-type pages show version 4); a type subscribed without one gets the newest.
TASKROUTER_SCHEMA_VERSIONS = (1, 2, 3, 4)
# TaskRouter's event types (Twilio's TaskRouter event reference): each is offered as ``com.twilio.taskrouter.{type}``.
TASKROUTER_EVENT_TYPES = frozenset({
    "reservation.created", "reservation.accepted", "reservation.rejected", "reservation.timeout",
    "reservation.canceled", "reservation.rescinded", "reservation.completed", "reservation.wrapup",
    "reservation.failed",
    "task.created", "task.updated", "task.canceled", "task.wrapup", "task.completed", "task.deleted",
    "task.system-deleted", "task.transfer-initiated", "task.transfer-attempt-failed", "task.transfer-failed",
    "task.transfer-canceled", "task.transfer-completed",
    "task-channel.created", "task-channel.updated", "task-channel.deleted",
    "task-queue.created", "task-queue.deleted", "task-queue.entered", "task-queue.timeout", "task-queue.moved",
    "task-queue.expression.updated",
    "worker.created", "worker.activity.update", "worker.attributes.update", "worker.capacity.update",
    "worker.channel.availability.update", "worker.deleted",
    "workflow.created", "workflow.updated", "workflow.deleted", "workflow.target-matched", "workflow.entered",
    "workflow.timeout", "workflow.skipped",
    "activity.created", "activity.updated", "activity.deleted",
    "workspace.created", "workspace.updated", "workspace.deleted",
})
SINK_TYPES = ("kinesis", "webhook", "segment", "email")
SINK_METHODS = ("POST", "GET")
# Payload fields that the event-type pages show as numbers.
_INTEGER_FIELDS = frozenset({"task_age", "task_priority"})
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def iso_ms(epoch_seconds: float) -> str:
    """``2025-01-01T00:00:00.000Z``: how Event Streams writes its times."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def snake_case_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """A TaskRouter event's callback form as Event Streams' snake_case payload: ``EventType`` becomes
    ``eventtype``, ``TaskQueueSid`` ``task_queue_sid``, and the epoch ``Timestamp``/``TimestampMs`` one
    ISO ``timestamp``; ``task_age`` and ``task_priority`` are numbers."""
    payload: dict[str, Any] = {}
    for name, value in fields.items():
        if name in ("Timestamp", "TimestampMs"):
            continue
        key = "eventtype" if name == "EventType" else _CAMEL.sub("_", name).lower()
        payload[key] = int(value) if key in _INTEGER_FIELDS and str(value).isdigit() else value
    millis = fields.get("TimestampMs")
    payload["timestamp"] = iso_ms(int(millis) / 1000 if millis and str(millis).isdigit() else 0)
    return payload


def event_name(event_type: str) -> str:
    """``reservation.rejected`` → ``ReservationRejected``, ``task-queue.entered`` → ``TaskQueueEntered``."""
    return "".join(part.capitalize() for part in re.split(r"[.\-]", event_type))


@dataclass
class Sink:
    sid: str
    account_sid: str
    description: str
    sink_type: str
    configuration: dict[str, Any]
    status: str
    date_created: float
    date_updated: float
    # The ids of test events the sink answered with a 2xx.
    received_tests: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{BASE_URL}/Sinks/{self.sid}"

    @property
    def deliverable(self) -> bool:
        return (self.status == "active" and self.sink_type == "webhook"
                and str(self.configuration.get("method", "")).upper() == "POST")

    def to_resource(self) -> dict[str, Any]:
        return {"date_created": iso_date(self.date_created), "date_updated": iso_date(self.date_updated),
                "description": self.description, "sid": self.sid, "sink_configuration": self.configuration,
                "sink_type": self.sink_type, "status": self.status, "url": self.url,
                "links": {"sink_test": f"{self.url}/Test", "sink_validate": f"{self.url}/Validate"}}


@dataclass
class Subscription:
    sid: str
    account_sid: str
    description: str
    sink_sid: str
    # type -> schema version, in the order subscribed
    types: dict[str, int]
    date_created: float
    date_updated: float

    @property
    def url(self) -> str:
        return f"{BASE_URL}/Subscriptions/{self.sid}"

    def to_resource(self) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "sid": self.sid, "date_created": iso_date(self.date_created),
                "date_updated": iso_date(self.date_updated), "description": self.description,
                "sink_sid": self.sink_sid, "url": self.url,
                "links": {"subscribed_events": f"{self.url}/SubscribedEvents"}}

    def subscribed_event(self, event_type: str) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "type": event_type, "schema_version": self.types[event_type],
                "subscription_sid": self.sid, "url": f"{self.url}/SubscribedEvents/{event_type}"}


class Events:
    """The simulated Event Streams of one account."""

    def __init__(self, account_sid: str, auth_token: str, clock: Clock, dispatcher: WebhookDispatcher,
                 taskrouter: TaskRouter, profile: Profile | None = None):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock = clock
        self.dispatcher = dispatcher
        self.profile = profile or Profile()
        self.sinks: dict[str, Sink] = {}
        self.subscriptions: dict[str, Subscription] = {}
        # Delivery: real seconds a batch waits for more events, its largest size, and a late copy of each.
        self.batch_window_s = 0.02
        self.max_batch = 50
        self.redeliver_after_s: float | None = None
        self._batches: dict[str, list[dict[str, Any]]] = {}
        taskrouter.add_listener(self._taskrouter_event)

    # --- Python API (tests, the scenario) ---

    def create_sink(self, description: str, sink_type: str, configuration: Mapping[str, Any]) -> Sink:
        with self.clock.lock:
            if sink_type not in SINK_TYPES:
                raise invalid(f"Invalid SinkType '{sink_type}'")
            configuration = dict(configuration)
            if sink_type == "webhook":
                _check_webhook_configuration(configuration)
            now = self.clock.now()
            status = "active" if self.profile.sink_validation == "active_at_once" else "initialized"
            sink = Sink(new_sid("DG"), self.account_sid, description, sink_type, configuration, status, now, now)
            self.sinks[sink.sid] = sink
            return sink

    def sink(self, sink_sid: str) -> Sink:
        with self.clock.lock:
            found = self.sinks.get(sink_sid)
            if found is None:
                raise not_found(f"/v1/Sinks/{sink_sid}")
            return found

    def delete_sink(self, sink_sid: str) -> None:
        with self.clock.lock:
            sink = self.sink(sink_sid)
            users = [s.sid for s in self.subscriptions.values() if s.sink_sid == sink.sid]
            if users:
                raise invalid(f"Sink {sink.sid} is used by subscription {users[0]}: delete the subscription first")
            del self.sinks[sink.sid]
            self._batches.pop(sink.sid, None)

    def test_sink(self, sink_sid: str) -> str:
        """Send the sink a test event at once; returns its test id (``TestId`` for Validate)."""
        with self.clock.lock:
            sink = self.sink(sink_sid)
            test_id = new_sid("TE")
            if sink.status == "initialized":
                sink.status, sink.date_updated = "validating", self.clock.now()
            if sink.sink_type == "webhook":
                now = self.clock.now()
                event = {"specversion": "1.0", "type": TEST_EVENT_TYPE, "source": f"/v1/Sinks/{sink.sid}/Test",
                         "id": new_sid("NO"), "datacontenttype": "application/json", "time": iso_ms(now),
                         "data": {"test_id": test_id, "sink_sid": sink.sid}}

                def answered(status: int | None) -> None:
                    if status is not None and 200 <= status < 300:
                        with self.clock.lock:
                            sink.received_tests.add(test_id)

                self._post(sink, [event], on_answer=answered)
            return test_id

    def validate_sink(self, sink_sid: str, test_id: str) -> str:
        with self.clock.lock:
            sink = self.sink(sink_sid)
            if self.profile.sink_validation == "active_at_once":
                return "valid"  # "always returns a result property with a value of valid"
            if test_id not in sink.received_tests:
                raise invalid(f"Sink {sink.sid} did not receive the test event {test_id}")
            sink.status, sink.date_updated = "active", self.clock.now()
            return "valid"

    def activate(self, sink_sid: str) -> None:
        """Make a sink active as if its test event had been validated (a test's shortcut)."""
        with self.clock.lock:
            sink = self.sink(sink_sid)
            sink.status, sink.date_updated = "active", self.clock.now()

    def create_subscription(self, description: str, sink_sid: str,
                            types: Iterable[tuple[str, int | None]]) -> Subscription:
        with self.clock.lock:
            sink = self.sinks.get(sink_sid)
            if sink is None:
                raise invalid(f"Sink {sink_sid} not found")
            if sink.status != "active":
                raise invalid(f"Sink {sink_sid} must be active for the subscription to be created (it is "
                              f"{sink.status})")
            wanted = {event_type: _schema_version(event_type, version) for event_type, version in types}
            if not wanted:
                raise invalid("Types must name at least one event type")
            now = self.clock.now()
            subscription = Subscription(new_sid("DF"), self.account_sid, description, sink.sid, wanted, now, now)
            self.subscriptions[subscription.sid] = subscription
            return subscription

    def subscription(self, subscription_sid: str) -> Subscription:
        with self.clock.lock:
            found = self.subscriptions.get(subscription_sid)
            if found is None:
                raise not_found(f"/v1/Subscriptions/{subscription_sid}")
            return found

    def delete_subscription(self, subscription_sid: str) -> None:
        with self.clock.lock:
            del self.subscriptions[self.subscription(subscription_sid).sid]

    def deliveries(self) -> list[Delivery]:
        """The dispatcher's Event Streams deliveries so far (test events included)."""
        return [d for d in list(self.dispatcher.deliveries) if d.events]

    # --- Delivery ---

    def _taskrouter_event(self, fields: dict[str, str]) -> None:
        """A TaskRouter event (under the lock): a CloudEvent for each subscription of its type."""
        event_type = TASKROUTER_TYPE_PREFIX + fields.get("EventType", "")
        for subscription in list(self.subscriptions.values()):
            version = subscription.types.get(event_type)
            sink = self.sinks.get(subscription.sink_sid)
            if version is None or sink is None or not sink.deliverable:
                continue
            event = self._cloud_event(fields, version)
            destination = _without_userinfo(str(sink.configuration["destination"]))
            if self.dispatcher.drop(destination, fields):
                self.dispatcher.deliveries.append(Delivery(destination, {}, None, dropped=True, events=(event,)))
                continue
            batch = self._batches.setdefault(sink.sid, [])
            batch.append(event)
            if len(batch) >= self.max_batch:
                self._flush(sink.sid)
            elif len(batch) == 1:
                self.clock.call_later(self.batch_window_s / self.clock.time_scale,
                                      lambda sid=sink.sid: self._flush(sid))

    def _cloud_event(self, fields: Mapping[str, str], version: int) -> dict[str, Any]:
        payload = snake_case_fields(fields)
        event_type = fields.get("EventType", "")
        if self.profile.event_streams_data == "envelope":
            data: dict[str, Any] = {
                "sid": fields.get("Sid"), "name": event_name(event_type), "account_sid": self.account_sid,
                "account_friendly_name": "Simulated account", "parent_account_sid": self.account_sid,
                "parent_friendly_name": "Simulated account", "timestamp": payload["timestamp"], "level": "INFO",
                "group": event_type.split(".", 1)[0], "product_name": "TaskRouter",
                "publisher": fields.get("WorkspaceName"), "publisher_metadata": "{}",
                "payload_type": "application/json", "payload": payload}
        else:
            data = payload
        return {"specversion": "1.0", "type": TASKROUTER_TYPE_PREFIX + event_type,
                "source": f"/v1/Workspaces/{fields.get('WorkspaceSid')}", "id": new_sid("NO"),
                "dataschema": DATASCHEMA.format(version=version), "datacontenttype": "application/json",
                "time": payload["timestamp"], "data": data}

    def _flush(self, sink_sid: str) -> None:
        with self.clock.lock:
            batch = self._batches.pop(sink_sid, [])
            sink = self.sinks.get(sink_sid)
            if not batch or sink is None or not sink.deliverable:
                return
            if sink.configuration.get("batch_events", True) is False:
                for event in batch:
                    self._post(sink, [event], batched=False)
                return
            for start in range(0, len(batch), self.max_batch):
                self._post(sink, batch[start:start + self.max_batch])

    def _post(self, sink: Sink, events: list[dict[str, Any]], batched: bool = True,
              on_answer: Callable[[int | None], None] | None = None) -> None:
        """POST ``events`` to the sink, with its URL's credentials and the profile's signature."""
        body = json.dumps(events if batched else events[0], separators=(",", ":")).encode()
        url, headers = self._signed(str(sink.configuration["destination"]), body)
        self.dispatcher.send_json(url, body, headers, events, on_answer)
        if self.redeliver_after_s is not None:
            self.clock.call_later(self.redeliver_after_s / self.clock.time_scale,
                                  lambda: self.dispatcher.send_json(url, body, headers, events))

    def _signed(self, destination: str, body: bytes) -> tuple[str, dict[str, str]]:
        """Where the body goes and its headers: HTTP Basic from the destination's user info, sent with every
        request, and X-Twilio-Signature as the ``event_streams_signature`` reading says."""
        parts = urlsplit(destination)
        url = _without_userinfo(destination)
        headers = {}
        if parts.username is not None:
            credentials = f"{parts.username}:{parts.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        reading = self.profile.event_streams_signature
        if reading == "body_sha256":
            url += ("&" if parts.query else "?") + "bodySHA256=" + hashlib.sha256(body).hexdigest()
            headers["X-Twilio-Signature"] = self._signature(url)
        elif reading == "url_and_body":
            headers["X-Twilio-Signature"] = self._signature(url + body.decode())
        return url, headers

    def _signature(self, text: str) -> str:
        digest = hmac.new(self.auth_token.encode(), text.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    # --- REST ---

    def handlers(self) -> dict[str, Handler]:
        """The REST operations, by operation id of ``twilio_events_v1``."""
        return {
            "ListSink": self._list_sinks,
            "CreateSink": lambda r: self.create_sink(
                str(r.params.get("Description")), str(r.params.get("SinkType")),
                _json_object(r.params.get("SinkConfiguration"), "SinkConfiguration")).to_resource(),
            "FetchSink": lambda r: self.sink(r.path_params["Sid"]).to_resource(),
            "UpdateSink": self._update_sink,
            "DeleteSink": lambda r: self._deleted(self.delete_sink, r.path_params["Sid"]),
            "CreateSinkTest": self._create_test,
            "CreateSinkValidate": lambda r: {"result": self.validate_sink(r.path_params["Sid"],
                                                                          str(r.params.get("TestId")))},
            "ListSubscription": self._list_subscriptions,
            "CreateSubscription": lambda r: self.create_subscription(
                str(r.params.get("Description")), str(r.params.get("SinkSid")),
                [_type_entry(raw) for raw in r.params.get("Types") or ()]).to_resource(),
            "FetchSubscription": lambda r: self.subscription(r.path_params["Sid"]).to_resource(),
            "UpdateSubscription": self._update_subscription,
            "DeleteSubscription": lambda r: self._deleted(self.delete_subscription, r.path_params["Sid"]),
            "ListSubscribedEvent": self._list_subscribed_events,
            "CreateSubscribedEvent": self._create_subscribed_event,
            "FetchSubscribedEvent": lambda r: self._subscribed(r)[0].subscribed_event(r.path_params["Type"]),
            "UpdateSubscribedEvent": self._update_subscribed_event,
            "DeleteSubscribedEvent": self._delete_subscribed_event,
        }

    @staticmethod
    def _deleted(delete: Callable[[str], None], sid: str) -> ApiResult:
        delete(sid)
        return ApiResult(None, 204)

    def _list_sinks(self, request: ApiRequest) -> list[dict[str, Any]]:
        in_use_param, status = request.params.get("InUse"), request.params.get("Status")
        used = {s.sink_sid for s in self.subscriptions.values()}
        sinks = [s for s in self.sinks.values()
                 if (status is None or s.status == status)
                 and (in_use_param is None or (s.sid in used) == (str(in_use_param).lower() == "true"))]
        return [s.to_resource() for s in sinks]

    def _update_sink(self, request: ApiRequest) -> dict[str, Any]:
        sink = self.sink(request.path_params["Sid"])
        sink.description, sink.date_updated = str(request.params.get("Description")), self.clock.now()
        return sink.to_resource()

    def _create_test(self, request: ApiRequest) -> dict[str, Any]:
        self.test_sink(request.path_params["Sid"])
        return {"result": "submitted"}

    def _list_subscriptions(self, request: ApiRequest) -> list[dict[str, Any]]:
        sink_sid = request.params.get("SinkSid")
        return [s.to_resource() for s in self.subscriptions.values() if sink_sid is None or s.sink_sid == sink_sid]

    def _update_subscription(self, request: ApiRequest) -> dict[str, Any]:
        subscription = self.subscription(request.path_params["Sid"])
        if "Description" in request.params:
            subscription.description = str(request.params["Description"])
            subscription.date_updated = self.clock.now()
        return subscription.to_resource()

    def _subscribed(self, request: ApiRequest) -> tuple[Subscription, str]:
        subscription = self.subscription(request.path_params["SubscriptionSid"])
        event_type = request.path_params.get("Type")
        if event_type is not None and event_type not in subscription.types:
            raise not_found(request.path)
        return subscription, event_type or ""

    def _list_subscribed_events(self, request: ApiRequest) -> list[dict[str, Any]]:
        subscription, _ = self._subscribed(request)
        return [subscription.subscribed_event(event_type) for event_type in subscription.types]

    def _create_subscribed_event(self, request: ApiRequest) -> ApiResult:
        subscription, _ = self._subscribed(request)
        event_type = str(request.params.get("Type"))
        version = request.params.get("SchemaVersion")
        existed = event_type in subscription.types
        if not existed or version is not None:
            subscription.types[event_type] = _schema_version(event_type, None if version is None else int(version))
            subscription.date_updated = self.clock.now()
        return ApiResult(subscription.subscribed_event(event_type), 200 if existed else 201)

    def _update_subscribed_event(self, request: ApiRequest) -> dict[str, Any]:
        subscription, event_type = self._subscribed(request)
        version = request.params.get("SchemaVersion")
        if version is not None:
            subscription.types[event_type] = _schema_version(event_type, int(version))
        return subscription.subscribed_event(event_type)

    def _delete_subscribed_event(self, request: ApiRequest) -> ApiResult:
        subscription, event_type = self._subscribed(request)
        if len(subscription.types) == 1:
            raise invalid(f"{event_type} is the last type of subscription {subscription.sid}: delete the subscription")
        del subscription.types[event_type]
        return ApiResult(None, 204)


def _check_webhook_configuration(configuration: dict[str, Any]) -> None:
    destination = configuration.get("destination")
    parts = urlsplit(destination) if isinstance(destination, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("SinkConfiguration.destination must be an absolute http(s) URL")
    if str(configuration.get("method", "")).upper() not in SINK_METHODS:
        raise invalid("SinkConfiguration.method must be POST or GET")
    if not isinstance(configuration.get("batch_events", True), bool):
        raise invalid("SinkConfiguration.batch_events must be true or false")


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


def _json_object(raw: Any, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise invalid(f"{name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid(f"{name} must be a JSON object")
    return value


def _type_entry(raw: Any) -> tuple[str, int | None]:
    """One ``Types`` value of CreateSubscription: ``{"type", "schema_version"?}`` as JSON."""
    entry = _json_object(raw, "Types")
    event_type, version = entry.get("type"), entry.get("schema_version")
    if not isinstance(event_type, str) or (version is not None and not isinstance(version, int)):
        raise invalid('Types must be JSON objects {"type": "…", "schema_version": n}')
    return event_type, version


def _schema_version(event_type: str, version: int | None) -> int:
    """The schema version of a subscribed type: the given one if TaskRouter has it, else the newest."""
    if not event_type.startswith(TASKROUTER_TYPE_PREFIX) or \
            event_type.removeprefix(TASKROUTER_TYPE_PREFIX) not in TASKROUTER_EVENT_TYPES:
        raise SimError(400, 20001, f"Invalid event type '{event_type}'")
    if version is None:
        return TASKROUTER_SCHEMA_VERSIONS[-1]
    if version not in TASKROUTER_SCHEMA_VERSIONS:
        raise invalid(f"Invalid schema version {version} for {event_type}")
    return version
