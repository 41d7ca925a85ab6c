"""What a person reads: friendly names beside the sids, and the transfer options an agent's form may offer."""

from __future__ import annotations

import pytest
from support.edge import ADMIN_TOKEN, bearer

FLEX = "https://flex.twilio.com"


@pytest.fixture
def alice(scenario):
    return bearer(scenario.tokens["alice"])


@pytest.fixture
def request_body(scenario):
    return {"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"]}


@pytest.fixture
def taskrouter_workers(sim):
    """Makes TaskRouter answer 503 to every read of a worker (``down()``) until ``up()`` or the test's end."""
    class Workers:
        rule = None

        def down(self):
            self.rule = sim.faults.add(product="taskrouter", path="/Workers/", kind=503)
            return self.rule

        def up(self):
            if self.rule is not None:
                sim.faults.remove(self.rule.id)

    workers = Workers()
    yield workers
    workers.up()


def test_a_transfer_names_its_agents(client, alice, request_body, scenario):
    """A read of the transfer carries the friendly names TaskRouter gives the sender and the target, by sid."""
    created = client.post("/v1/transfers", json=request_body, headers=alice).get_json()
    body = client.get(f"/v1/transfers/{created['id']}", headers=alice).get_json()
    assert body["names"] == {scenario.agents["alice"]: "Alice", scenario.agents["carol"]: "Carol"}


def test_the_answer_to_a_transfer_request_names_what_is_known_and_asks_taskrouter_nothing(
        client, alice, request_body, scenario, taskrouter_workers):
    """The 202 is not held up by TaskRouter: it names the target the form asked about (GET /v1/names) and
    leaves the sender's name to the polls."""
    carol = scenario.agents["carol"]
    assert client.get(f"/v1/names?sid={carol}", headers=alice).get_json() == {"names": {carol: "Carol"}}
    rule = taskrouter_workers.down()
    created = client.post("/v1/transfers", json=request_body, headers=alice)
    assert created.status_code == 202 and created.get_json()["names"] == {carol: "Carol"}
    assert rule.count == 0


def test_a_queue_target_is_named(client, alice, request_body, scenario):
    created = client.post("/v1/transfers", json={**request_body, "to": scenario.queues["billing"]},
                          headers=alice).get_json()
    body = client.get(f"/v1/transfers/{created['id']}", headers=alice).get_json()
    assert body["names"] == {scenario.agents["alice"]: "Alice", scenario.queues["billing"]: "Billing"}


def test_names_are_kept_so_a_poll_asks_taskrouter_nothing(client, alice, request_body, taskrouter_workers):
    """Once read, names come from Redis: with TaskRouter's workers unavailable, a poll still has them."""
    created = client.post("/v1/transfers", json=request_body, headers=alice).get_json()
    first = client.get(f"/v1/transfers/{created['id']}", headers=alice).get_json()
    rule = taskrouter_workers.down()
    polled = client.get(f"/v1/transfers/{created['id']}", headers=alice).get_json()
    assert polled["names"] == first["names"] and len(polled["names"]) == 2
    assert rule.count == 0


def test_a_name_taskrouter_cannot_give_is_left_out_and_asked_again(client, alice, request_body, taskrouter_workers,
                                                                    scenario):
    """TaskRouter unavailable: the transfer is answered without names (the reader shows sids); the next read,
    TaskRouter back, has them."""
    created = client.post("/v1/transfers", json=request_body, headers=alice)
    taskrouter_workers.down()
    unnamed = client.get(f"/v1/transfers/{created.get_json()['id']}", headers=alice)
    assert unnamed.status_code == 200 and unnamed.get_json()["names"] == {}
    taskrouter_workers.up()
    polled = client.get(f"/v1/transfers/{created.get_json()['id']}", headers=alice).get_json()
    assert polled["names"] == {scenario.agents["alice"]: "Alice", scenario.agents["carol"]: "Carol"}


def test_a_listing_names_each_transfer(client, alice, request_body, scenario):
    client.post("/v1/transfers", json=request_body, headers=alice)
    listed = client.get(f"/v1/transfers?task_sid={request_body['task_sid']}", headers=alice).get_json()
    assert [transfer["names"] for transfer in listed["transfers"]] == [
        {scenario.agents["alice"]: "Alice", scenario.agents["carol"]: "Carol"}]


def test_any_agent_reads_the_transfer_options(client, scenario):
    """Baton's defaults, and the workflows an agent may transfer to: every one but Baton's own transfer workflow."""
    response = client.get("/v1/transfer-options", headers=bearer(scenario.tokens["bob"]))
    assert response.status_code == 200
    assert response.get_json() == {
        "transfers_enabled": True, "notes_enabled": True, "summary_enabled": False, "notes_max_length": 1000,
        "workflows": [{"sid": scenario.inbound_workflow_sid, "name": "Inbound"}],
    }


def test_the_options_follow_the_administrators_switches(client, scenario):
    changed = client.patch("/v1/settings", json={"notes_enabled": False, "summary_enabled": True,
                                                 "transfers_enabled": False}, headers=bearer(ADMIN_TOKEN))
    assert changed.status_code == 200
    options = client.get("/v1/transfer-options", headers=bearer(scenario.tokens["alice"])).get_json()
    assert (options["transfers_enabled"], options["notes_enabled"], options["summary_enabled"]) == (False, False, True)


def test_options_need_a_valid_token(client):
    response = client.get("/v1/transfer-options")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "missing_token"


def test_options_without_taskrouter_still_give_the_switches(client, sim, scenario):
    """The workflows cannot be listed now: the form still gets the switches, and ``workflows`` is null."""
    rule = sim.faults.add(product="taskrouter", path="/Workflows", kind=503)
    try:
        options = client.get("/v1/transfer-options", headers=bearer(scenario.tokens["alice"])).get_json()
    finally:
        sim.faults.remove(rule.id)
    assert options["workflows"] is None and options["notes_enabled"] is True


def test_the_flex_ui_may_read_the_options_from_its_origin(client, scenario):
    """The plugin reads the options from the Flex origin: the browser's preflight and the answer carry CORS."""
    preflight = client.options("/v1/transfer-options", headers={
        "Origin": FLEX, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == FLEX
    answer = client.get("/v1/transfer-options", headers={**bearer(scenario.tokens["alice"]), "Origin": FLEX})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == FLEX


def test_a_form_asks_for_the_names_of_the_sids_it_has(client, scenario):
    """The plugin's form knows only the target's sid: Baton names workers, queues and workflows; a sid
    TaskRouter does not know is left out."""
    unknown = "WK" + "0" * 32
    sids = [scenario.agents["carol"], scenario.queues["support"], scenario.inbound_workflow_sid, unknown]
    response = client.get("/v1/names", query_string={"sid": sids}, headers=bearer(scenario.tokens["bob"]))
    assert response.status_code == 200
    assert response.get_json() == {"names": {scenario.agents["carol"]: "Carol", scenario.queues["support"]: "Support",
                                             scenario.inbound_workflow_sid: "Inbound"}}


@pytest.mark.parametrize("query, message", [
    ({}, "sid: give 1 to 20 sids"),
    ({"sid": "WT" + "0" * 32}, "sid.0: must be a WK or WQ or WW sid: the prefix followed by 32 hex digits"),
    ({"sid": ["WK" + f"{n:032x}" for n in range(21)]}, "sid: give 1 to 20 sids"),
])
def test_names_need_sids_of_workers_queues_or_workflows(client, scenario, query, message):
    response = client.get("/v1/names", query_string=query, headers=bearer(scenario.tokens["bob"]))
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == message and response.get_json()["error"]["field"].startswith(
        "sid")


def test_a_sid_taskrouter_does_not_know_is_asked_for_once(client, sim, scenario):
    """A deleted worker is remembered as nameless for a while: polls do not ask TaskRouter at every read."""
    ghost = "WK" + "0e" * 16
    asked_before = len(sim.requests.find("GET", f"/Workers/{ghost}"))
    reads = [client.get("/v1/names", query_string={"sid": ghost}, headers=bearer(scenario.tokens["bob"]))
             for _ in range(3)]
    assert [read.get_json() for read in reads] == [{"names": {}}] * 3
    assert len(sim.requests.find("GET", f"/Workers/{ghost}")) - asked_before == 1
