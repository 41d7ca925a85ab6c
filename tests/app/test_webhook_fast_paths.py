"""The webhook's shortcuts (bench/, issue 8) answer exactly as the slow ways they replace."""

from __future__ import annotations

import json

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict

from app.errors import ApiError
from app.schemas import TaskRouterEventSchema
from app.webhooks import _signature, _signed_parameters, taskrouter_fields, transfer_id_of

URL = "https://baton.example.com/webhooks/taskrouter?env=prod"
FORMS = [
    {},
    {"EventType": "task.created", "Sid": "EV1", "TaskAttributes": json.dumps({"café": "crème ☕", "n": [1, 2]})},
    # Several values for a name, one of them twice: each distinct value counts once, in order.
    [("Filters", "onMessageAdded"), ("Filters", "onConversationStateUpdated"), ("Filters", "onMessageAdded"),
     ("EventType", ""), ("Sid", "EV2")],
]


@pytest.mark.parametrize("form", FORMS)
def test_the_signature_is_the_sdks(form):
    """The string to sign built once for both URLs gives the twilio SDK's signature of the form."""
    params = ImmutableMultiDict(form)
    expected = RequestValidator("token").compute_signature(URL, params)
    assert _signature(b"token", URL + _signed_parameters(params)) == expected


@pytest.mark.parametrize("form", [
    {"EventType": "reservation.created", "Sid": "EV1", "TaskAttributes": "{}", "Unknown": "dropped"},
    {"EventType": "worker.activity.update", "Sid": "EV2", "WorkerSid": "WK1", "TimestampMs": "1"},
])
def test_a_form_is_read_as_the_schema_loads_it(form):
    """A valid form gives the very fields TaskRouterEventSchema would load."""
    params = ImmutableMultiDict(form)
    assert taskrouter_fields(params) == TaskRouterEventSchema().load(params)


def test_a_form_without_an_event_type_is_still_refused_by_the_schema():
    """A form missing EventType (or with it empty) goes through the schema and is a 400 naming the field."""
    for form in ({"Sid": "EV1"}, {"Sid": "EV1", "EventType": ""}):
        with pytest.raises(ApiError) as raised:
            taskrouter_fields(ImmutableMultiDict(form))
        assert raised.value.status == 400 and raised.value.field == "EventType"


@pytest.mark.parametrize(("attributes", "transfer_id"), [
    (json.dumps({"transfer": {"id": "tr_1"}}), "tr_1"),
    (json.dumps({"transfer" : {"id": "tr_2"}}, separators=(",", " : ")), "tr_2"),
    (json.dumps({"transferTargetType": "worker", "channelType": "chat"}), None),
    (json.dumps({"notes": "a transfer was asked for"}), None),
    ('{"transfer": ', None),
    (None, None),
])
def test_only_attributes_naming_a_transfer_are_parsed(attributes, transfer_id):
    """Attributes without the key "transfer" are skipped unparsed; with it, the id is read as before."""
    assert transfer_id_of(attributes) == transfer_id
