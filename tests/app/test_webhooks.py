"""Twilio's webhooks: signatures against PUBLIC_BASE_URL, events of transfers delivered once to their inbox (one job
reads it), others dropped cheaply."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time

import pytest
from support.edge import PUBLIC_BASE_URL, payload, signature, without_request_id

from baton.domain import transfers as t
from baton.infrastructure import eventstreams
from baton.infrastructure.store import Record
from simulator.events import snake_case_fields
from workers.celery_app import TRANSFER_INBOX

TRANSFER_ID = "tr_3f1c0e5a9b7d4c2e8a6f1b0d9c7e5a31"  # in the captured payloads' TaskAttributes
RESERVATION_CREATED = "twilio_events/taskrouter/reservation.created"  # an offer of a transfer's new task
RESERVATION_REJECTED = "twilio_events/taskrouter/reservation.rejected"  # that offer refused
# What the webhook forwards of a TaskRouter event; the rest (attributes of the task and the worker) stays out of Redis.
FORWARDED = ("EventType", "Sid", "TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "TimestampMs")


def delivered(form: dict[str, str]) -> dict:
    """What a transfer's inbox holds for this TaskRouter event."""
    return {"source": "taskrouter", "fields": {name: form[name] for name in FORWARDED}}


def queued(jobs) -> list[tuple[str, list]]:
    """The queued jobs, as (task name, arguments)."""
    return [(job.name, job.args) for job in jobs()]


@pytest.fixture
def post_signed(client, scenario):
    """Post a form to a webhook path, signed as Twilio signs it for the public URL (or for ``url``)."""
    def post(path: str, form: dict[str, str], url: str | None = None, query: str = ""):
        signed = signature(scenario.auth_token, (url or PUBLIC_BASE_URL + path) + query, form)
        return client.post(path + query, data=form, headers={"X-Twilio-Signature": signed})
    return post


def test_an_event_of_a_transfer_is_put_in_its_inbox_once_however_often_twilio_sends_it(post_signed, jobs, inbox):
    """A reservation.created of a transfer's task sent three times is answered 204 each time, put once in the
    transfer's inbox (its forwarded fields only), and one job is enqueued to read that inbox."""
    event = payload(RESERVATION_CREATED)
    for _ in range(3):
        response = post_signed("/webhooks/taskrouter", event)
        assert response.status_code == 204 and response.content_type == "application/json"
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(event)]


def test_events_of_a_transfer_share_one_job_until_it_has_finished_with_the_inbox(post_signed, jobs, inbox, store):
    """A rejection and the next event of the same transfer, one after the other, join one inbox, in order, read by
    one job; an event that comes while that job runs joins it too; once the job has finished with an emptied inbox
    (``finish_inbox``), the next event enqueues another job."""
    rejected, created = payload(RESERVATION_REJECTED), payload(RESERVATION_CREATED)
    assert post_signed("/webhooks/taskrouter", rejected).status_code == 204
    assert post_signed("/webhooks/taskrouter", created).status_code == 204
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(rejected), delivered(created)]

    assert [without_request_id(d) for d in store.take_inbox(TRANSFER_ID)] == [delivered(rejected), delivered(created)]
    meanwhile = {**created, "Sid": "EV" + "8" * 32}
    assert post_signed("/webhooks/taskrouter", meanwhile).status_code == 204
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert store.finish_inbox(TRANSFER_ID, 2) == 1 and inbox(TRANSFER_ID) == [delivered(meanwhile)]
    assert store.finish_inbox(TRANSFER_ID, 1) == 0
    later = {**created, "Sid": "EV" + "7" * 32}
    assert post_signed("/webhooks/taskrouter", later).status_code == 204
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])] * 2


def test_an_event_keeps_the_request_id_of_the_webhook_that_brought_it(client, scenario, inbox):
    """The worker logs each event it applies under its webhook's request id, whichever job applies it: the inbox
    keeps that id beside the event."""
    event = payload(RESERVATION_CREATED)
    path = "/webhooks/taskrouter"
    headers = {"X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + path, event),
               "X-Request-ID": "req-of-the-offer-0001"}
    assert client.post(path, data=event, headers=headers).status_code == 204
    assert inbox(TRANSFER_ID, with_request_ids=True) == [{**delivered(event), "request_id": "req-of-the-offer-0001"}]


def test_the_signature_is_checked_against_the_public_url(post_signed, jobs, inbox):
    """A signature for PUBLIC_BASE_URL validates although the app sees http://localhost; one for that URL does not."""
    event = payload(RESERVATION_CREATED)
    refused = post_signed("/webhooks/taskrouter", event, url="http://localhost/webhooks/taskrouter")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invalid_signature"
    assert inbox(TRANSFER_ID) == [] and jobs() == []
    assert post_signed("/webhooks/taskrouter", event).status_code == 204
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])] and inbox(TRANSFER_ID) == [delivered(event)]


def test_a_query_string_is_part_of_the_signed_url(post_signed):
    """A callback URL with a query string is verified with that query string."""
    response = post_signed("/webhooks/taskrouter", payload(RESERVATION_CREATED), query="?env=prod")
    assert response.status_code == 204


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
def test_an_unsigned_or_badly_signed_event_is_refused(client, headers, jobs):
    """No X-Twilio-Signature, or a wrong one, is a 403 invalid_signature and nothing is delivered."""
    response = client.post("/webhooks/taskrouter", data=payload(RESERVATION_CREATED), headers=headers)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "invalid_signature"
    assert jobs() == []


def test_a_tampered_form_is_refused(client, scenario, jobs):
    """A form changed after Twilio signed it is a 403."""
    event = payload(RESERVATION_CREATED)
    signed = signature(scenario.auth_token, PUBLIC_BASE_URL + "/webhooks/taskrouter", event)
    response = client.post("/webhooks/taskrouter", data={**event, "EventType": "reservation.accepted"},
                           headers={"X-Twilio-Signature": signed})
    assert response.status_code == 403 and jobs() == []


@pytest.mark.parametrize("name, change", [
    ("taskrouter/reservation_accepted_not_a_transfer", {}),
    ("twilio_events/taskrouter/workflow.target-matched", {}),
    ("twilio_events/taskrouter/reservation.created", {"TaskAttributes": json.dumps({"transfer": "tr_1"})}),
    ("twilio_events/taskrouter/reservation.created", {"TaskAttributes": "not json"}),
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
    post_signed("/webhooks/taskrouter", payload(RESERVATION_CREATED))
    post_signed("/webhooks/taskrouter", {**payload("taskrouter/reservation_accepted_not_a_transfer"), "Sid": ""})
    lines = [(record.levelno, record.status) for record in caplog.records if record.name == "baton.requests"]
    assert lines == [(logging.DEBUG, 204), (logging.INFO, 204), (logging.INFO, 400)]


@pytest.mark.parametrize("missing", ["EventType", "Sid"])
def test_an_event_without_its_type_or_sid_is_refused(post_signed, jobs, missing):
    """A signed TaskRouter event without EventType or Sid is a 400 naming the field."""
    event = {key: value for key, value in payload(RESERVATION_CREATED).items() if key != missing}
    response = post_signed("/webhooks/taskrouter", event)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == missing
    assert jobs() == []


def test_a_conversations_event_is_acknowledged(post_signed):
    """A signed Conversations post-event webhook is answered 200 with {}."""
    response = post_signed("/webhooks/conversations", payload("twilio_events/conversations/onMessageAdded"))
    assert response.status_code == 200 and response.get_json() == {}


def test_a_conversations_event_is_verified_and_validated(client, post_signed):
    """The Conversations webhook refuses a bad signature (403) and a form without EventType (400)."""
    event = payload("twilio_events/conversations/onMessageAdded")
    assert client.post("/webhooks/conversations", data=event).status_code == 403
    response = post_signed("/webhooks/conversations", {k: v for k, v in event.items() if k != "EventType"})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "EventType"


def test_an_event_whose_job_could_not_be_enqueued_is_delivered_when_twilio_sends_it_again(post_signed, jobs, inbox,
                                                                                          monkeypatch):
    """When the inbox's job cannot be enqueued the event is answered 5xx, and neither it nor the inbox is marked
    (seen, scheduled): Twilio's retry is delivered and enqueues the job."""
    import app.webhooks

    event = payload(RESERVATION_CREATED)
    real_send, sent = app.webhooks.send_job, []

    def broker_away(celery, name, transfer_id):
        sent.append((name, transfer_id))
        raise ConnectionError("broker away")

    monkeypatch.setattr(app.webhooks, "send_job", broker_away)
    assert post_signed("/webhooks/taskrouter", event).status_code >= 500
    # Tried below Flask (app.ingest), then by Flask's view: each attempt delivered the event and was undelivered.
    assert sent == [(TRANSFER_INBOX, TRANSFER_ID)] * 2 and jobs() == []
    monkeypatch.setattr(app.webhooks, "send_job", real_send)
    assert post_signed("/webhooks/taskrouter", event).status_code == 204
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    # The refused attempts' copies stay in the inbox (Store.undeliver_event): applying an event twice changes nothing.
    assert inbox(TRANSFER_ID) == [delivered(event)] * 3


def test_a_participant_removed_is_delivered_once_per_transfer_however_often_twilio_sends_it(post_signed, jobs, inbox,
                                                                                          store):
    """Conversations events carry no event sid: the same removal sent (or replayed) three times is put once in the
    inbox of the conversation's transfer; the removal of another participant is another event, which joins that
    inbox while its one job waits."""
    event = payload("twilio_events/conversations/onParticipantRemoved")
    transfer = t.Transfer(id="tr_conversation_dedupe", from_task_sid="WT" + "5" * 32, from_worker_sid="WK" + "5" * 32,
                          target_type="worker", target_sid="WK" + "6" * 32, conversation_sid=event["ConversationSid"])
    store.create(Record(transfer))
    for _ in range(3):
        assert post_signed("/webhooks/conversations", event).status_code == 200
    post_signed("/webhooks/conversations", {**event, "ParticipantSid": "MB" + "2" * 32})

    assert queued(jobs) == [(TRANSFER_INBOX, ["tr_conversation_dedupe"])]
    deliveries = inbox("tr_conversation_dedupe")
    assert [(d["source"], d["fields"]["ParticipantSid"]) for d in deliveries] == [
        ("conversations", event["ParticipantSid"]), ("conversations", "MB" + "2" * 32)]
    assert "Identity" not in deliveries[0]["fields"]


# Event Streams: the same events through a webhook sink, as batches of CloudEvents (baton.infrastructure.eventstreams)


def cloud_event(form: dict[str, str], reading: str = "envelope") -> dict:
    """A callback form as Event Streams sends the same event, under one reading of ``data`` (the simulator's)."""
    payload = snake_case_fields(form)
    data = {"sid": form["Sid"], "name": "Event", "payload_type": "application/json", "payload": payload}
    if reading == "flat":
        data = payload
    elif reading == "payload as text":
        data = {**data, "payload": json.dumps(payload)}
    return {"specversion": "1.0", "type": "com.twilio.taskrouter." + form["EventType"], "id": "NO" + "7" * 32,
            "source": "/v1/Workspaces/WS", "time": payload["timestamp"], "data": data}


@pytest.fixture
def post_stream(client, scenario):
    """POST a delivery to the sink URL, with this deployment's credentials and Twilio's signature (``scheme``:
    body_sha256, url_and_body or none)."""
    def post(events, scheme: str = "body_sha256", credentials: tuple[str, str] | None = None, body: bytes | None = None,
             signed_url: str | None = None, headers: dict[str, str] | None = None):
        body = json.dumps(events).encode() if body is None else body
        user, password = credentials or eventstreams.sink_credentials(scenario.auth_token, PUBLIC_BASE_URL)
        headers = {**(headers or {}),
                   "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        path = "/webhooks/event-streams"
        url = signed_url or PUBLIC_BASE_URL + path
        if scheme == "body_sha256":
            query = "?bodySHA256=" + hashlib.sha256(body).hexdigest()
            path, url = path + query, url + query
            headers["X-Twilio-Signature"] = signature(scenario.auth_token, url, {})
        elif scheme == "url_and_body":
            headers["X-Twilio-Signature"] = signature(scenario.auth_token, url + body.decode(), {})
        return client.post(path, data=body, headers=headers, content_type="application/json")
    return post


def test_twilios_documented_example_is_delivered_as_the_callback_would_deliver_it(post_stream, post_signed, jobs,
                                                                                  inbox):
    """A delivery shaped as Twilio's event-type page shows it (envelope, ``data.payload``) puts in the transfer's inbox
    what the callback puts there for the same event; the callback's copy that comes next is not delivered again."""
    response = post_stream(payload("eventstreams/reservation_created"))
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "enqueued": 1, "duplicates": 0, "ignored": 0, "malformed": 0}
    assert post_signed("/webhooks/taskrouter", payload(RESERVATION_CREATED)).status_code == 204

    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(payload(RESERVATION_CREATED))]


@pytest.mark.parametrize("reading", ["envelope", "flat", "payload as text"])
def test_every_reading_of_data_is_translated_alike(post_stream, jobs, inbox, reading):
    """``data.payload``, the fields directly in ``data``, and a payload sent as JSON text deliver the same fields."""
    form = payload(RESERVATION_CREATED)
    assert post_stream([cloud_event(form, reading)]).status_code == 200
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(form)]


def test_the_callback_then_the_stream_and_redeliveries_are_delivered_once(post_stream, post_signed, jobs, inbox):
    """At least once, by both paths: the callback first, then the same event in three redelivered batches (Twilio
    retries for hours), is one event in the inbox, and one job."""
    form = payload(RESERVATION_CREATED)
    assert post_signed("/webhooks/taskrouter", form).status_code == 204
    for _ in range(3):
        response = post_stream([cloud_event(form)])
        assert response.status_code == 200 and response.get_json()["duplicates"] == 1
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(form)]


def test_a_malformed_or_foreign_event_does_not_hold_up_the_others(post_stream, jobs, inbox):
    """Garbage, another product's event, a TaskRouter event without data or identity, and an event of another task
    are skipped; the transfer's event in the same batch is delivered, and the batch answered 200."""
    form = payload(RESERVATION_CREATED)
    batch = ["not an event", {"type": "com.twilio.messaging.message.delivered", "data": {"messageSid": "SM1"}},
             {"type": "com.twilio.taskrouter.reservation.created", "data": "nope"},
             {"type": "com.twilio.taskrouter.reservation.created", "data": {"payload": {}}},
             {"data": {}}, cloud_event(payload("taskrouter/reservation_accepted_not_a_transfer")), cloud_event(form)]
    response = post_stream(batch)
    assert response.status_code == 200
    assert response.get_json() == {"received": 7, "enqueued": 1, "duplicates": 0, "ignored": 2, "malformed": 4}
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(form)]


def test_a_batch_about_no_transfer_makes_no_redis_call(app, post_stream):
    """Events of other tasks, or of types the engine ignores, cost no Redis call, as on the callback path."""
    calls = []

    class CountingRedis:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            calls.append(name)
            return getattr(self.real, name)

    store = app.extensions["baton.store"]
    store.redis = CountingRedis(store.redis)
    other = payload("taskrouter/reservation_accepted_not_a_transfer")
    ignored = {**payload(RESERVATION_CREATED), "EventType": "task.created"}
    response = post_stream([cloud_event(other), cloud_event(ignored), cloud_event(other, "flat")])
    assert response.status_code == 200 and response.get_json()["ignored"] == 3
    assert calls == []


@pytest.mark.parametrize("scheme", ["body_sha256", "url_and_body", "none"])
def test_each_reading_of_the_signature_is_accepted(post_stream, jobs, inbox, scheme):
    """The JSON-body scheme (bodySHA256), the URL followed by the body, and no signature at all (credentials only)."""
    form = payload(RESERVATION_CREATED)
    assert post_stream([cloud_event(form)], scheme=scheme).status_code == 200
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])] and inbox(TRANSFER_ID) == [delivered(form)]


def test_a_signature_of_the_url_with_its_credentials_is_accepted(post_stream, scenario, jobs, inbox):
    """Twilio may sign the sink's destination as configured, credentials included."""
    user, password = eventstreams.sink_credentials(scenario.auth_token, PUBLIC_BASE_URL)
    signed_url = eventstreams.with_userinfo(PUBLIC_BASE_URL + "/webhooks/event-streams", user, password)
    form = payload(RESERVATION_CREATED)
    answers = [post_stream([cloud_event(form)], scheme, signed_url=signed_url).get_json()
               for scheme in ("body_sha256", "url_and_body")]
    assert [(answer["enqueued"], answer["duplicates"]) for answer in answers] == [(1, 0), (0, 1)]
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])] and inbox(TRANSFER_ID) == [delivered(form)]


@pytest.mark.parametrize("scheme", ["body_sha256", "url_and_body"])
def test_a_delivery_signed_with_a_shared_key_is_refused(post_stream, jobs, scheme):
    """A signed delivery carrying X-Twilio-Webhooks-Signature-Settings (a SharedKey's, whose secret Baton is not
    given) is a 403 naming the header, whatever else is signed."""
    settings = "key=webhooks_sharedkey_01jr5k3v4m6y8w0z2b4d6f8h0k,algorithm=HMAC_SHA256"
    response = post_stream([cloud_event(payload(RESERVATION_CREATED))], scheme,
                           headers={"X-Twilio-Webhooks-Signature-Settings": settings})
    assert response.status_code == 403
    assert "X-Twilio-Webhooks-Signature-Settings" in response.get_json()["error"]["message"]
    assert jobs() == []


def test_unauthenticated_deliveries_are_refused_and_nothing_is_delivered(client, post_stream, scenario, jobs):
    """No credentials or wrong ones: 401 with a Basic challenge; right credentials but a signature that does not
    match (a body changed on the way): 403."""
    batch = [cloud_event(payload(RESERVATION_CREATED))]
    bare = client.post("/webhooks/event-streams", json=batch)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Basic")
    assert bare.get_json()["error"]["code"] == "invalid_credentials"
    user, password = eventstreams.sink_credentials(scenario.auth_token, PUBLIC_BASE_URL)
    assert post_stream(batch, credentials=(user, password[:-1] + "x")).status_code == 401
    assert post_stream(batch, credentials=("admin", password)).status_code == 401
    other_deployment = eventstreams.sink_credentials(scenario.auth_token, "https://staging.example.com")
    assert post_stream(batch, credentials=other_deployment).status_code == 401
    signed = signature(scenario.auth_token, PUBLIC_BASE_URL + "/webhooks/event-streams" + json.dumps(batch), {})
    tampered = client.post("/webhooks/event-streams", data=json.dumps([{**batch[0], "id": "NO" + "0" * 32}]),
                           content_type="application/json",
                           headers={"X-Twilio-Signature": signed, "Authorization": "Basic " + base64.b64encode(
                               f"{user}:{password}".encode()).decode()})
    assert tampered.status_code == 403 and tampered.get_json()["error"]["code"] == "invalid_signature"
    assert jobs() == []


def test_a_body_that_is_not_json_is_refused(post_stream):
    """An authenticated body that is not JSON (or neither an array nor an object) is a 400."""
    assert post_stream(None, body=b"not json").status_code == 400
    assert post_stream(None, body=b'"a string"').status_code == 400


def test_a_test_event_is_recorded_for_setup_and_doctor(post_stream, store):
    """A sink's test event is remembered (its id, for Validate) and nothing else is done with it."""
    event = {"specversion": "1.0", "type": "com.twilio.eventstreams.test-sink", "id": "NO" + "1" * 32,
             "data": {"test_id": "TE" + "2" * 32}}
    assert post_stream([event]).status_code == 200
    test_id, at = eventstreams.last_sink_test(store)
    assert test_id == "TE" + "2" * 32 and abs(at - time.time()) < 5


def test_a_batch_whose_second_job_could_not_be_enqueued_is_all_handled_when_twilio_sends_it_again(post_stream, jobs,
                                                                                                   inbox, monkeypatch):
    """Events of two transfers in one batch, the broker failing on the second transfer's job: 5xx. The batch sent
    again delivers the second event and enqueues its job, and neither delivers the first event twice nor enqueues
    a second job for its transfer."""
    import app.webhooks

    other_transfer = "tr_" + "9" * 32
    first = payload(RESERVATION_CREATED)
    second = {**first, "Sid": "EV" + "9" * 32, "EventType": "reservation.accepted",
              "TaskAttributes": json.dumps({"transfer": {"id": other_transfer}})}
    real_send, sent = app.webhooks.send_job, []

    def fails_once_for_the_other_transfer(celery, name, transfer_id):
        sent.append(transfer_id)
        if transfer_id == other_transfer and sent.count(other_transfer) == 1:
            raise ConnectionError("broker away")
        return real_send(celery, name, transfer_id)

    monkeypatch.setattr(app.webhooks, "send_job", fails_once_for_the_other_transfer)
    batch = [cloud_event(first), cloud_event(second)]
    assert post_stream(batch).status_code >= 500
    again = post_stream(batch)
    assert again.status_code == 200 and (again.get_json()["enqueued"], again.get_json()["duplicates"]) == (1, 1)
    assert sent == [TRANSFER_ID, other_transfer, other_transfer]
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID]), (TRANSFER_INBOX, [other_transfer])]
    assert inbox(TRANSFER_ID) == [delivered(first)]
    # The refused attempt's copy stays in the inbox (Store.undeliver_event): applying an event twice changes nothing.
    assert inbox(other_transfer) == [delivered(second)] * 2


def test_a_full_batch_puts_every_event_of_the_transfer_in_its_inbox_for_one_job(post_stream, jobs, inbox):
    """Twenty events of a transfer and twenty of other tasks in one batch (as large as MAX_BODY_BYTES lets it be):
    the twenty are delivered to the transfer's inbox in the batch's order, and one job reads them."""
    keep = (*FORWARDED, "TaskAttributes")
    form, other = payload(RESERVATION_CREATED), payload("taskrouter/reservation_accepted_not_a_transfer")
    form, other = ({name: value for name, value in f.items() if name in keep} for f in (form, other))
    events = [{**form, "Sid": f"EV{n:032x}"} for n in range(20)]
    response = post_stream([cloud_event(event) for event in events] + [cloud_event(other)] * 20)
    assert response.status_code == 200 and response.get_json()["enqueued"] == 20
    assert queued(jobs) == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [delivered(event) for event in events]


def test_a_batch_over_64_kib_is_accepted(post_stream):
    """Event Streams batches carry each event's task and worker attributes: a batch can pass 64 KiB."""
    form = payload(RESERVATION_CREATED)
    batch = [cloud_event({**form, "Sid": f"EV{n:032x}"}) for n in range(40)]
    assert len(json.dumps(batch)) > 64 * 1024
    assert post_stream(batch).status_code == 200
