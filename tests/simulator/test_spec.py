"""The simulator's view of Twilio's OpenAPI descriptions: extract, matching, validation, shapes."""

import subprocess
import sys
from pathlib import Path

import pytest
from support.prerequisites import require

from simulator.spec import EXTRACT, Spec, SpecError

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT.parent / "shared" / "twilio-oai"

WS, WT, WK, WR = "WS" + "a" * 32, "WT" + "b" * 32, "WK" + "c" * 32, "WR" + "d" * 32
CH, KD, UO = "CH" + "e" * 32, "KD" + "f" * 32, "UO" + "1" * 32

TASK = f"/v1/Workspaces/{WS}/Tasks/{WT}"
INVITES = f"/v1/Interactions/{KD}/Channels/{UO}/Invites"


@pytest.fixture(scope="module")
def spec():
    return Spec.load()


def refusal(operation, params):
    """The SpecError that validating ``params`` raises."""
    with pytest.raises(SpecError) as info:
        operation.validate(params)
    return info.value


def test_extract_regenerates_exactly(tmp_path):
    """Running the script on ../shared/twilio-oai reproduces the committed extract and LICENSE."""
    require(SOURCE.is_dir(), f"Twilio's descriptions are not at {SOURCE} (the workplace's shared/ beside the "
                             "repository, which CI has)")
    output = tmp_path / "extract.json"
    script = REPO_ROOT / "scripts" / "extract_twilio_oai.py"
    subprocess.run([sys.executable, script, "--source", SOURCE, "--output", output], check=True)
    assert output.read_bytes() == EXTRACT.read_bytes()
    assert (tmp_path / "LICENSE").read_bytes() == (EXTRACT.parent / "LICENSE").read_bytes()


def test_extract_stays_small():
    """The committed extract stays a reviewable size."""
    assert EXTRACT.stat().st_size < 300_000


def test_load_is_cached():
    """Spec.load reads the extract once per process."""
    assert Spec.load() is Spec.load()


@pytest.mark.parametrize(
    ("product", "method", "path", "operation_id", "path_params"),
    [
        ("taskrouter", "POST", TASK, "UpdateTask", {"WorkspaceSid": WS, "Sid": WT}),
        ("taskrouter", "get", f"/v1/Workspaces/{WS}/Workers/{WK}/Channels/chat", "FetchWorkerChannel",
         {"WorkspaceSid": WS, "WorkerSid": WK, "Sid": "chat"}),
        ("taskrouter", "POST", f"{TASK}/Reservations/{WR}", "UpdateTaskReservation",
         {"WorkspaceSid": WS, "TaskSid": WT, "Sid": WR}),
        ("conversations", "GET", f"/v1/Conversations/{CH}/Messages", "ListConversationMessage",
         {"ConversationSid": CH}),
        ("conversations", "DELETE", "/v1/Conversations/support-42", "DeleteConversation",
         {"Sid": "support-42"}),
        ("conversations", "POST", "/v1/Configuration/Webhooks", "UpdateConfigurationWebhook", {}),
        ("flex-api", "POST", INVITES, "CreateInteractionChannelInvite",
         {"InteractionSid": KD, "ChannelSid": UO}),
        ("flex-api", "GET", f"/v1/Interactions/{KD}", "FetchInteraction", {"Sid": KD}),
    ],
)
def test_match_binds_path_params(spec, product, method, path, operation_id, path_params):
    """A concrete path finds its operation, bound to the path's parameter values."""
    operation = spec.match(product, method, path)
    assert (operation.operation_id, dict(operation.path_params)) == (operation_id, path_params)
    assert operation.method == method.upper()


def test_path_patterns_come_from_the_spec(spec):
    """Each path parameter carries the description's sid pattern, or None where any value goes."""
    task = spec.match("taskrouter", "GET", TASK)
    conversation = spec.match("conversations", "GET", f"/v1/Conversations/{CH}")
    assert dict(task.path_patterns) == {"WorkspaceSid": "^WS[0-9a-fA-F]{32}$", "Sid": "^WT[0-9a-fA-F]{32}$"}
    assert dict(conversation.path_patterns) == {"Sid": None}


@pytest.mark.parametrize(
    ("product", "path"),
    [
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks/{WK}"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks/WT123"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks/{WT}/Comments"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Statistics"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks/"),
        ("flex-api", f"/v1/Interactions/{KD}/Channels/{CH}"),
        ("conversations", f"/v1/Conversations/{CH}/Messages/{WT}"),
        ("iam", "/v1/Keys"),
    ],
)
def test_unknown_path_or_misshapen_sid_is_not_found(spec, product, path):
    """An unknown path, or a sid of the wrong shape, answers 404 / 20404 as Twilio does."""
    with pytest.raises(SpecError) as info:
        spec.match(product, "GET", path)
    assert info.value.to_body() == {
        "code": 20404,
        "message": f"The requested resource {path} was not found",
        "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404,
    }


@pytest.mark.parametrize(
    ("product", "method", "path"),
    [
        ("taskrouter", "DELETE", f"/v1/Workspaces/{WS}/Tasks"),
        ("taskrouter", "DELETE", f"{TASK}/Reservations/{WR}"),
        ("flex-api", "GET", "/v1/Interactions"),
        ("conversations", "PUT", f"/v1/Conversations/{CH}"),
    ],
)
def test_known_path_without_the_method_is_not_allowed(spec, product, method, path):
    """A known path asked with a method it lacks answers 405 / 20004."""
    with pytest.raises(SpecError) as info:
        spec.match(product, method, path)
    assert (info.value.status, info.value.code, info.value.message) == (405, 20004, "Method not allowed")


def test_literal_segment_beats_parameter():
    """Where a literal segment and a parameter both fit, the literal template wins."""
    def get(operation_id):
        operation = {"operation_id": operation_id, "status": 200, "body": None, "list_key": None}
        return {"GET": {**operation, "query": {}, "form": {}, "headers": {}, "properties": []}}

    paths = {
        "/v1/TaskQueues/{Sid}": {"path_params": {"Sid": None}, "methods": get("FetchTaskQueue")},
        "/v1/TaskQueues/Statistics": {"path_params": {}, "methods": get("Statistics")},
    }
    spec = Spec({"page_meta": [], "products": {"taskrouter": {"paths": paths}}})
    assert spec.match("taskrouter", "GET", "/v1/TaskQueues/Statistics").operation_id == "Statistics"
    assert spec.match("taskrouter", "GET", "/v1/TaskQueues/WQ1").operation_id == "FetchTaskQueue"


def test_unknown_parameter_is_refused(spec):
    """A misspelled form parameter is refused with a 400 naming it and the operation."""
    error = refusal(spec.match("taskrouter", "POST", TASK), {"Atributes": ['{"a": 1}']})
    assert error.to_body() == {
        "code": 20001,
        "message": "Unknown parameter 'Atributes' for POST /v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}",
        "more_info": "https://www.twilio.com/docs/errors/20001",
        "status": 400,
    }


def test_enum_value_is_checked(spec):
    """AssignmentStatus=done is refused with the allowed values listed; completed is accepted."""
    update = spec.match("taskrouter", "POST", TASK)
    update.validate({"AssignmentStatus": ["completed"], "Reason": ["resolved"]})
    error = refusal(update, {"AssignmentStatus": ["done"]})
    assert (error.status, error.code) == (400, 20001)
    assert error.message == (
        "Invalid value 'done' for parameter 'AssignmentStatus'; "
        "expected one of: pending, reserved, assigned, canceled, completed, wrapping"
    )


@pytest.mark.parametrize(
    ("method", "path", "name", "values", "accepted"),
    [
        ("POST", TASK, "Priority", ["10"], True),
        ("POST", TASK, "Priority", ["-1"], True),
        ("POST", TASK, "Priority", ["high"], False),
        ("POST", TASK, "Priority", ["1.5"], False),
        ("POST", TASK, "Priority", ["high", "3"], True),
        ("POST", TASK, "Priority", ["3", "high"], False),
        ("GET", f"/v1/Workspaces/{WS}/Tasks", "HasAddons", ["true"], True),
        ("GET", f"/v1/Workspaces/{WS}/Tasks", "HasAddons", ["False"], True),
        ("GET", f"/v1/Workspaces/{WS}/Tasks", "HasAddons", ["yes"], False),
        ("POST", f"/v1/Workspaces/{WS}/Workers/{WK}/Channels/chat", "Available", ["1"], False),
        ("POST", INVITES, "Routing", ['{"properties": {"workflow_sid": "WW1"}}'], True),
        ("POST", INVITES, "Routing", ["workflow=WW1"], False),
        ("POST", f"{TASK}/Reservations/{WR}", "StatusCallbackEvent", ["ringing", "answered"], True),
        ("POST", f"{TASK}/Reservations/{WR}", "StatusCallbackEvent", ["ringing", "busy"], False),
        ("GET", f"/v1/Workspaces/{WS}/Tasks", "AssignmentStatus", ["pending", "reserved"], True),
    ],
)
def test_values_are_checked_by_type(spec, method, path, name, values, accepted):
    """Integers, booleans, JSON and array elements must parse; a repeated scalar counts at its last value."""
    product = "flex-api" if path.startswith("/v1/Interactions") else "taskrouter"
    operation = spec.match(product, method, path)
    if accepted:
        operation.validate({name: values})
    else:
        assert refusal(operation, {name: values}).message.startswith(f"Invalid value '{values[-1]}'")


@pytest.mark.parametrize(
    ("product", "path", "params", "missing"),
    [
        ("flex-api", INVITES, {}, "Routing"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Workflows", {"FriendlyName": ["Transfers"]}, "Configuration"),
        ("taskrouter", f"/v1/Workspaces/{WS}/TaskChannels", {"FriendlyName": ["Chat"]}, "UniqueName"),
    ],
)
def test_required_parameter_is_checked(spec, product, path, params, missing):
    """A create without one of its required parameters is refused naming it."""
    error = refusal(spec.match(product, "POST", path), params)
    assert (error.status, error.message) == (400, f"Missing required parameter {missing}")


def test_dotted_and_array_names_are_kept(spec):
    """Parameter names with dots, and repeated array parameters, validate as the SDK sends them."""
    spec.match("conversations", "POST", f"/v1/Conversations/{CH}").validate(
        {"Timers.Inactive": ["PT5M"], "State": ["active"]}
    )
    spec.match("conversations", "POST", f"/v1/Conversations/{CH}/Participants").validate(
        {"MessagingBinding.Address": ["+15550100"], "MessagingBinding.ProxyAddress": ["+15550199"]}
    )
    spec.match("conversations", "POST", "/v1/Configuration/Webhooks").validate(
        {"Filters": ["onMessageAdded", "onParticipantAdded"], "Method": ["POST"]}
    )


def test_paging_params_are_accepted_on_every_list_operation(spec):
    """The twilio SDK's PageSize, Page and PageToken are declared on every list operation."""
    lists = [operation for operation in spec.operations if operation.list_key]
    assert len(lists) == 21  # 18, and Event Streams' sinks, subscriptions and subscribed events
    for operation in lists:
        operation.validate({"PageSize": ["50"], "Page": ["1"], "PageToken": ["PT1"]})


def test_json_body_operation_is_not_checked(spec):
    """Flex's Transfers take a JSON body the description leaves open, so any field passes."""
    transfers = spec.match("flex-api", "POST", f"/v1/Interactions/{KD}/Channels/{UO}/Transfers")
    assert transfers.body == "json"
    transfers.validate({"to": ["WK1"], "type": ["cold"]})


def test_shape_gives_every_declared_property(spec):
    """A task is answered with every property of Twilio's task, None where unknown, extras dropped."""
    task = {"sid": WT, "assignment_status": "pending", "secret": 1}
    shaped = spec.match("taskrouter", "GET", TASK).shape(task)
    assert {"sid", "attributes", "assignment_status", "url", "links", "workflow_sid"} <= shaped.keys()
    assert (shaped["sid"], shaped["assignment_status"], shaped["attributes"]) == (WT, "pending", None)
    assert "secret" not in shaped


@pytest.mark.parametrize(
    ("product", "path", "list_key", "item_property"),
    [
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks", "tasks", "assignment_status"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Workers/{WK}/Channels", "channels", "configured_capacity"),
        ("taskrouter", f"/v1/Workspaces/{WS}/Tasks/{WT}/Reservations", "reservations", "reservation_status"),
        ("conversations", f"/v1/Conversations/{CH}/Messages", "messages", "body"),
        ("conversations", f"/v1/Conversations/{CH}/Participants", "participants", "messaging_binding"),
        ("flex-api", INVITES, "invites", "routing"),
        ("flex-api", f"/v1/Interactions/{KD}/Channels/{UO}/Participants", "participants", "type"),
    ],
)
def test_shape_of_a_list_exposes_its_key(spec, product, path, list_key, item_property):
    """A list operation names its list key and shapes each item and the paging meta."""
    operation = spec.match(product, "GET", path)
    shaped = operation.shape({list_key: [{"sid": "X1", "extra": True}], "meta": {"page": 0}})
    assert operation.list_key == list_key
    assert shaped.keys() == {list_key, "meta"}
    assert shaped[list_key][0]["sid"] == "X1" and item_property in shaped[list_key][0]
    assert "extra" not in shaped[list_key][0]
    assert shaped["meta"]["key"] == list_key and shaped["meta"]["page"] == 0
    assert shaped["meta"].keys() >= {"first_page_url", "next_page_url", "page_size", "url"}


def test_delete_shapes_to_nothing(spec):
    """A DELETE answers 204 with no properties to shape."""
    delete = spec.match("conversations", "DELETE", f"/v1/Conversations/{CH}/Participants/MB1")
    assert (delete.status, delete.shape({"sid": "MB1"})) == (204, {})
