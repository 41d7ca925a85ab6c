"""The webhook's shortcuts (bench/, issue 8) answer exactly as the slow ways they replace."""

from __future__ import annotations

import json

import pytest
from werkzeug.datastructures import ImmutableMultiDict

from app.errors import ApiError
from app.schemas import TaskRouterEventSchema
from app.webhooks import taskrouter_fields, transfer_id_of


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
