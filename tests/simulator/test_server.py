"""The simulator's HTTP face: authentication, validation, errors, paging and the control API."""

import pytest
import requests
from support.simulator import wait_until
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from baton.infrastructure.twilio_gateway import RoutingHttpClient


@pytest.fixture
def chat(sim):
    """A conversation with seven messages, m0 … m6."""
    conversation = sim.conversations.create_conversation()
    for n in range(7):
        sim.conversations.add_message(conversation.sid, "carol", f"m{n}")
    return conversation


class CountingList(list):
    """A list that counts how many of its items are read, to measure the cost of a page."""

    reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def test_bad_basic_auth_is_401(api, sim):
    """A wrong auth token is refused with 401 and Twilio's code 20003."""
    response = requests.get(api.url("conversations", "/v1/Conversations"), auth=(sim.account_sid, "wrong"))

    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_bad_auth_is_401_through_the_sdk(sim):
    """The twilio SDK surfaces the simulator's 401 as a TwilioRestException with code 20003."""
    conversation = sim.conversations.create_conversation()
    client = Client(sim.account_sid, "wrong", http_client=RoutingHttpClient(sim.url))

    with pytest.raises(TwilioRestException) as refused:
        client.conversations.v1.conversations(conversation.sid).fetch()

    assert (refused.value.status, refused.value.code) == (401, 20003)


def test_unknown_parameter_is_400(api, world):
    """A misspelled form parameter is refused with 400 and code 20001 rather than ignored."""
    response = api.post("taskrouter", f"/v1/Workspaces/{world.workspace_sid}/Tasks", data={"Atributes": "{}"})

    assert response.status_code == 400
    assert response.json()["code"] == 20001
    assert "Atributes" in response.json()["message"]


def test_bad_enum_value_is_400(api, sim, world):
    """An AssignmentStatus outside the enum is refused with 400 and code 20001."""
    task = sim.taskrouter.create_task(world.workspace_sid, attributes={}, workflow_sid=world.workflow_sid)

    response = api.post("taskrouter", f"/v1/Workspaces/{world.workspace_sid}/Tasks/{task.sid}",
                        data={"AssignmentStatus": "done"})

    assert response.status_code == 400
    assert response.json()["code"] == 20001


def test_unknown_sid_is_404(client, world):
    """Fetching a task that does not exist raises Twilio's 404 with code 20404."""
    with pytest.raises(TwilioRestException) as missing:
        client.taskrouter.v1.workspaces(world.workspace_sid).tasks("WT" + "0" * 32).fetch()

    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_operation_the_simulator_does_not_serve_is_405(api):
    """An operation Twilio describes but the simulator does not serve answers 405 naming the operation."""
    response = api.get("flex-api", f"/v1/Interactions/KD{'1' * 32}/Channels/UO{'2' * 32}/Transfers/UX{'3' * 32}")

    assert response.status_code == 405
    assert response.json()["code"] == 20004
    assert "FetchInteractionTransfer" in response.json()["message"]


def test_created_resource_answers_with_the_spec_status_and_shape(api):
    """A created conversation answers 201 with exactly the properties Twilio's description lists."""
    response = api.post("conversations", "/v1/Conversations", data={"FriendlyName": "Carol"})

    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["friendly_name"] == "Carol" and body["attributes"] == "{}" and body["state"] == "active"
    assert set(body) == {"account_sid", "chat_service_sid", "messaging_service_sid", "sid", "friendly_name",
                         "unique_name", "attributes", "state", "date_created", "date_updated", "timers", "url",
                         "links", "bindings"}


def test_list_pages_with_twilio_urls(api, chat):
    """A list answers one page with meta URLs on Twilio's real host that lead to the next page."""
    first = api.get("conversations", f"/v1/Conversations/{chat.sid}/Messages",
                    params={"Order": "desc", "PageSize": 3}).json()

    assert [m["body"] for m in first["messages"]] == ["m6", "m5", "m4"]
    meta = first["meta"]
    assert (meta["page"], meta["page_size"], meta["key"], meta["previous_page_url"]) == (0, 3, "messages", None)
    assert meta["url"].startswith(f"https://conversations.twilio.com/v1/Conversations/{chat.sid}/Messages?")
    assert "Order=desc" in meta["next_page_url"]
    second = api.session.get(meta["next_page_url"].replace("https://conversations.twilio.com",
                                                           f"{api.base_url}/conversations")).json()
    assert [m["body"] for m in second["messages"]] == ["m3", "m2", "m1"]
    assert second["meta"]["page"] == 1 and second["meta"]["previous_page_url"] is not None


def test_page_size_is_clamped_to_twilio_maximum(api, chat):
    """A PageSize above the operation's maximum (100 for messages) is clamped, as Twilio does."""
    meta = api.get("conversations", f"/v1/Conversations/{chat.sid}/Messages", params={"PageSize": 500}).json()["meta"]

    assert meta["page_size"] == 100


def test_sdk_lists_newest_first_across_pages(client, chat):
    """The twilio SDK follows the simulator's next_page_url through several pages of a newest-first list."""
    messages = client.conversations.v1.conversations(chat.sid).messages.list(order="desc", page_size=2)

    assert [m.body for m in messages] == ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]


@pytest.mark.parametrize("length", [1_000, 100_000])
def test_newest_first_page_costs_its_size_whatever_the_length(api, sim, length):
    """Reading the third newest-first page of 100 reads 100 messages, for 1,000 or 100,000 messages alike."""
    conversation = sim.conversations.create_conversation()
    for n in range(length):
        sim.conversations.add_message(conversation.sid, "carol", f"m{n}", webhooks=False)
    conversation.messages = CountingList(conversation.messages)

    page = api.get("conversations", f"/v1/Conversations/{conversation.sid}/Messages",
                   params={"Order": "desc", "PageSize": 100, "Page": 2, "PageToken": "PT200"}).json()

    assert page["messages"][0]["body"] == f"m{length - 201}"
    assert conversation.messages.reads == 100


def test_request_log_counts_rest_requests(api, sim, chat):
    """Every REST request is logged with its status, and the control API filters the log."""
    api.get("conversations", f"/v1/Conversations/{chat.sid}/Messages")
    api.post("conversations", f"/v1/Conversations/{chat.sid}/Messages", data={"Body": "hi"})
    api.post("conversations", f"/v1/Conversations/{chat.sid}/Messages", data={"Bdy": "typo"})

    logged = requests.get(f"{sim.url}/_sim/requests", params={"path_contains": "/Messages", "method": "POST"}).json()

    assert [(r["status"], r["params"]) for r in logged["requests"]] == [(201, {"Body": "hi"}), (400, {})]
    assert len(sim.requests.find(product="conversations")) == 3


def test_control_api_sends_sdk_messages_and_lists_deliveries(sim, chat, receiver):
    """A message posted through /_sim/ fires onMessageAdded like an SDK client's, visible in /_sim/deliveries."""
    sim.conversations.configure_webhooks(post_webhook_url=f"{receiver.url}/hooks", filters=["onMessageAdded"])

    posted = requests.post(f"{sim.url}/_sim/conversations/{chat.sid}/messages", json={"author": "carol", "body": "?"})

    assert posted.status_code == 201 and posted.json()["index"] == 7
    deliveries = requests.get(f"{sim.url}/_sim/deliveries", params={"wait": "true"}).json()["deliveries"]
    assert [(d["event_type"], d["status"], d["params"]["Source"]) for d in deliveries] == [
        ("onMessageAdded", 204, "SDK")]


def test_control_api_mints_tokens_and_sets_policies(sim, world):
    """The control API mints Flex tokens for a worker and scripts its offers."""
    health = requests.get(f"{sim.url}/_sim/health").json()
    token = requests.post(f"{sim.url}/_sim/tokens", json={"worker_sid": world.alice, "roles": ["supervisor"]})
    policy = requests.put(f"{sim.url}/_sim/agents/{world.bob}/policy", json=[{"action": "reject", "delay": 1}])
    refused = requests.put(f"{sim.url}/_sim/agents/{world.bob}/policy", json=[{"action": "dance"}])

    assert health == {"status": "ok", "account_sid": sim.account_sid}
    validated = sim.iam.validate(token.json()["token"])
    assert validated["identity"] == "alice"
    assert (validated["roles"], validated["worker_sid"]) == (["supervisor"], world.alice)
    assert policy.json() == {"worker_sid": world.bob, "steps": [{"action": "reject", "delay": 1.0}]}
    assert refused.status_code == 400
    assert requests.get(f"{sim.url}/_sim/agents/{world.bob}/policy").json()["steps"][0]["action"] == "reject"


def test_control_api_reads_and_sets_the_profile(sim):
    """/_sim/profile shows the switches; PUT starts from a named profile and sets switches; unknowns are 400."""
    url = f"{sim.url}/_sim/profile"
    shown = requests.get(url).json()
    alternate = requests.put(url, json={"name": "alternate", "switches": {"redrive": "pending_only"}}).json()
    switched = requests.put(url, json={"switches": {"workflow_end": "cancel"}}).json()
    refused = [requests.put(url, json=body) for body in (
        {"switches": {"redrive": "sometimes"}}, {"switches": {"teleport": "on"}}, {"name": "lenient"})]

    assert shown["switches"] == shown["profiles"]["documented"]
    assert alternate["switches"] == {**shown["profiles"]["alternate"], "redrive": "pending_only"}
    assert switched["switches"] == {**alternate["switches"], "workflow_end": "cancel"}
    assert [response.status_code for response in refused] == [400, 400, 400]
    assert sim.profile.switches() == switched["switches"]
    assert sim.taskrouter.profile is sim.profile


def test_served_simulator_answers_the_sdk_for_taskrouter(client, sim, world):
    """TaskRouter answers through the same server: a task created with the SDK is routed and readable."""
    sim.agents.set_policy(world.alice, [{"action": "accept"}])

    task = client.taskrouter.v1.workspaces(world.workspace_sid).tasks.create(
        attributes='{"type": "support"}', workflow_sid=world.workflow_sid)

    wait_until(lambda: client.taskrouter.v1.workspaces(world.workspace_sid).tasks(task.sid).fetch()
               .assignment_status == "assigned")
