"""REST fault injection, seen from the twilio SDK through Baton's gateway, and its control API.

The gateway's client is the one ``build_twilio_client`` makes, so each fault reaches Baton's code as
it would from Twilio: a RetryableTwilioError with the status, code and ``Retry-After`` it carried.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from requests.adapters import HTTPAdapter
from support.simulator import wait_until

from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import RetryableTwilioError, TwilioGateway, build_twilio_client

TASK_UPDATE = {"method": "POST", "path": "/Tasks/"}


@pytest.fixture
def gateway(sim, world):
    config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                    twilio_workspace_sid=world.workspace_sid, transfer_workflow_sid=world.workflow_sid,
                    public_base_url="http://127.0.0.1:9", twilio_api_base=sim.url)
    return TwilioGateway(build_twilio_client(config), world.workspace_sid)


@pytest.fixture
def task(sim, world):
    return sim.taskrouter.create_task(world.workspace_sid, attributes={"step": 0}, workflow_sid=world.workflow_sid)


def fetch_once(gateway, task_sid: str) -> str:
    """One GET of the task through the SDK, with the gateway's error classification but none of its retries (the
    transport's READ_RETRY is replaced by an adapter that tries nothing again)."""
    http = gateway.client.http_client
    http.session.mount(http.api_base, HTTPAdapter())
    return gateway._call("tasks.fetch", lambda: gateway.client.taskrouter.v1.workspaces(gateway.workspace_sid)
                         .tasks(task_sid).fetch()).sid


def step_of(sim, task) -> int:
    return sim.taskrouter.task(task.sid).attributes["step"]


def update_in_background(gateway, task, step: int) -> tuple[threading.Thread, list]:
    """Start updating the task's step from another thread; the list receives the answer."""
    answers: list = []
    caller = threading.Thread(target=lambda: answers.append(gateway.update_task_attributes(task.sid, {"step": step},
                                                                                          None)))
    caller.start()
    return caller, answers


def short_read_timeout(gateway, read_s: float) -> None:
    gateway.client.http_client.request_timeout = (1.0, read_s)


def test_429_is_retryable_with_retry_after_and_not_applied(sim, gateway, task):
    """A 429 reaches Baton with code 20429 and its Retry-After, the update is not applied, and it is logged."""
    rule = sim.faults.add(**TASK_UPDATE, kind=429, retry_after=7, times=1)

    with pytest.raises(RetryableTwilioError) as limited:
        gateway.update_task_attributes(task.sid, {"step": 1}, None)

    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (429, 20429, 7.0)
    assert step_of(sim, task) == 0
    gateway.update_task_attributes(task.sid, {"step": 1}, None)
    assert step_of(sim, task) == 1
    assert (rule.count, sim.faults.count(429), sim.faults.count()) == (1, 1, 1)
    logged = requests.get(f"{sim.url}/_sim/requests", params={"path_contains": "/Tasks/", "method": "POST"}).json()
    assert [(r["status"], r["fault"]) for r in logged["requests"]] == [(429, "429"), (200, None)]


@pytest.mark.parametrize(("kind", "code"), [(500, 20500), (503, 20503)])
def test_5xx_is_retryable_with_its_status_and_not_applied(sim, gateway, task, kind, code):
    """A 500 or 503 is a RetryableTwilioError with Twilio's status and code; the task is unchanged."""
    sim.faults.add(**TASK_UPDATE, kind=kind)

    with pytest.raises(RetryableTwilioError) as failed:
        gateway.update_task_attributes(task.sid, {"step": 1}, None)

    assert (failed.value.status, failed.value.code, failed.value.retry_after) == (kind, code, None)
    assert step_of(sim, task) == 0


def test_timeout_is_retryable_but_the_request_was_applied(sim, gateway, task):
    """A read timeout is retryable with no status, yet Twilio acted: the task update happened."""
    short_read_timeout(gateway, 0.2)
    sim.faults.add(**TASK_UPDATE, kind="timeout", delay_s=0.6)

    with pytest.raises(RetryableTwilioError) as slow:
        gateway.update_task_attributes(task.sid, {"step": 1}, None)

    assert isinstance(slow.value.__cause__, requests.exceptions.ReadTimeout)
    assert slow.value.status is None
    assert step_of(sim, task) == 1
    assert sim.faults.count("timeout") == 1


def test_dropped_connection_is_retryable_and_not_applied(sim, gateway, task):
    """A dropped connection is a ConnectionError at once, the update is not applied, and the log has no status."""
    sim.faults.add(**TASK_UPDATE, kind="drop", times=1)

    started = time.monotonic()
    with pytest.raises(RetryableTwilioError) as dropped:
        gateway.update_task_attributes(task.sid, {"step": 1}, None)

    assert time.monotonic() - started < 2
    assert isinstance(dropped.value.__cause__, requests.exceptions.ConnectionError)
    assert step_of(sim, task) == 0
    assert [(r.status, r.fault) for r in sim.requests.find("POST", "/Tasks/")] == [(None, "drop")]
    gateway.update_task_attributes(task.sid, {"step": 1}, None)
    assert step_of(sim, task) == 1


def test_delay_before_applies_late_and_answers_normally(sim, gateway, task):
    """A delay with when="before" keeps the request in flight and unapplied, then applies and answers it."""
    rule = sim.faults.add(**TASK_UPDATE, kind="delay", delay_s=0.4, when="before")
    started = time.monotonic()
    caller, answers = update_in_background(gateway, task, 1)

    assert rule.wait()
    assert step_of(sim, task) == 0
    caller.join(timeout=5)

    assert time.monotonic() - started >= 0.4
    assert answers[0].attributes == {"step": 1}
    assert step_of(sim, task) == 1


def test_rate_faults_a_reproducible_share(sim, gateway, task):
    """A rate of 0.2 over 200 fetches faults the same share every run: 48 with seed 7."""
    sim.faults.add(method="GET", path="/Tasks/", product="taskrouter", kind=500, rate=0.2, seed=7)

    failures = 0
    for _ in range(200):
        try:
            fetch_once(gateway, task.sid)
        except RetryableTwilioError as exc:
            assert exc.status == 500
            failures += 1

    assert failures == 48 == sim.faults.count(500)


def test_sequence_faults_the_next_requests_in_order_then_passes(sim, gateway, task):
    """A scripted sequence gives the next matching requests its faults in order (None passes one), then passes."""
    rule = sim.faults.add(**TASK_UPDATE, sequence=[429, None, "503"])
    outcomes = []
    for step in range(1, 6):
        try:
            gateway.update_task_attributes(task.sid, {"step": step}, None)
            outcomes.append("ok")
        except RetryableTwilioError as exc:
            outcomes.append(exc.status)

    assert outcomes == [429, "ok", 503, "ok", "ok"]
    assert rule.exhausted
    assert step_of(sim, task) == 5
    assert sim.faults.counts() == {"429": 1, "503": 1}


def test_fault_hits_only_valid_requests(sim, gateway, task):
    """A request the spec refuses (a misspelled parameter) gets its 400 as usual and uses up no fault."""
    rule = sim.faults.add(method="POST", kind=503, times=1)
    url = f"https://taskrouter.twilio.com/v1/Workspaces/{gateway.workspace_sid}/Tasks/{task.sid}"

    refused = gateway.client.request("POST", url, data={"Atributes": "{}"})

    assert refused.status_code == 400
    assert (rule.count, rule.exhausted) == (0, False)


def test_hold_before_leaves_the_request_unapplied_until_released(sim, gateway, task):
    """A hold with when="before" keeps the request unapplied while held; released, it is applied and answered."""
    rule = sim.faults.add(**TASK_UPDATE, kind="hold", when="before", times=1)
    caller, answers = update_in_background(gateway, task, 1)

    assert rule.wait()
    time.sleep(0.05)
    assert step_of(sim, task) == 0 and caller.is_alive()
    rule.release()
    caller.join(timeout=5)

    assert answers[0].attributes == {"step": 1}
    assert step_of(sim, task) == 1


def test_hold_after_applies_but_the_caller_never_learns(sim, gateway, task):
    """A hold with when="after" on the caller's event applies the update; the caller times out not knowing."""
    short_read_timeout(gateway, 0.3)
    event = threading.Event()
    rule = sim.faults.add(**TASK_UPDATE, kind="hold", when="after", until=event)

    with pytest.raises(RetryableTwilioError) as lost:
        gateway.update_task_attributes(task.sid, {"step": 1}, None)

    assert isinstance(lost.value.__cause__, requests.exceptions.ReadTimeout)
    assert step_of(sim, task) == 1
    event.set()
    wait_until(lambda: sim.requests.find("POST", "/Tasks/"))
    assert [(r.status, r.fault) for r in sim.requests.find("POST", "/Tasks/")] == [(200, "hold")]
    gateway.update_task_attributes(task.sid, {"step": 2}, None)  # the event is set: requests pass
    assert rule.count == 1


def test_iam_faults_reach_flex_token_validation(sim, gateway):
    """A 429 from IAM makes Flex token validation retryable with its Retry-After."""
    sim.faults.add(product="iam", kind=429, retry_after=2)

    with pytest.raises(RetryableTwilioError) as limited:
        gateway.validate_flex_token(sim.iam.mint_token("WK" + "1" * 32, "alice"))

    assert (limited.value.status, limited.value.retry_after) == (429, 2.0)


def test_control_api_round_trip(sim, gateway, task):
    """Rules are added, listed, counted, released and removed through /_sim/faults; bad rules are refused."""
    faults_url = f"{sim.url}/_sim/faults"
    created = requests.post(faults_url, json={"method": "GET", "path_regex": r"/Tasks/WT[0-9a-f]{32}$",
                                              "kind": 503, "times": 2})
    assert created.status_code == 201
    rule_id = created.json()["id"]

    statuses = []
    for _ in range(3):
        try:
            statuses.append(fetch_once(gateway, task.sid))
        except RetryableTwilioError as exc:
            statuses.append(exc.status)
    listed = requests.get(faults_url).json()

    assert statuses == [503, 503, task.sid]
    assert listed["counts"] == {"503": 2} and listed["total"] == 2
    assert [(r["id"], r["path_regex"], r["sequence"], r["count"], r["exhausted"]) for r in listed["rules"]] == [
        (rule_id, r"/Tasks/WT[0-9a-f]{32}$", ["503", "503"], 2, True)]
    assert requests.post(faults_url, json={"kind": "teapot"}).status_code == 400
    assert requests.post(faults_url, json={"kind": 500, "rate": 2}).status_code == 400
    assert requests.post(faults_url, json={"kind": 500, "colour": "red"}).status_code == 400
    assert requests.delete(f"{faults_url}/{rule_id}").status_code == 204
    assert requests.delete(f"{faults_url}/{rule_id}").status_code == 404

    hold_id = requests.post(faults_url, json={**TASK_UPDATE, "kind": "hold", "when": "before", "times": 1}).json()["id"]
    caller, _ = update_in_background(gateway, task, 1)
    wait_until(lambda: requests.get(f"{faults_url}/{hold_id}").json()["count"] == 1)
    assert step_of(sim, task) == 0
    assert requests.post(f"{faults_url}/{hold_id}/release").json()["released"] is True
    caller.join(timeout=5)
    assert step_of(sim, task) == 1

    assert requests.delete(faults_url).status_code == 204
    assert requests.get(faults_url).json()["rules"] == []


def test_control_api_drops_and_duplicates_webhooks(sim, receiver):
    """/_sim/webhooks/drop loses the named event types only; /_sim/webhooks/delivery sends each webhook twice."""
    taskrouter = sim.taskrouter
    workspace = taskrouter.create_workspace("Hooks", event_callback_url=f"{receiver.url}/taskrouter")
    queue = taskrouter.create_task_queue(workspace.sid, "Everyone")
    workflow = taskrouter.create_workflow(workspace.sid, "All",
                                          {"task_routing": {"default_filter": {"queue": queue.sid}}})
    dropping = requests.post(f"{sim.url}/_sim/webhooks/drop", json={"event_types": ["task.created"], "rate": 1})
    assert dropping.json() == {"event_types": ["task.created"], "rate": 1.0, "seed": 0}

    first = taskrouter.create_task(workspace.sid, attributes={}, workflow_sid=workflow.sid)
    deliveries = requests.get(f"{sim.url}/_sim/deliveries", params={"wait": "true"}).json()["deliveries"]
    mine = [d for d in deliveries if d["params"].get("TaskSid") == first.sid]
    assert {(d["event_type"], d["dropped"]) for d in mine} >= {("task.created", True), ("task-queue.entered", False)}
    assert not [h for h in receiver.events("task.created") if h.params["TaskSid"] == first.sid]
    assert [h for h in receiver.events("task-queue.entered") if h.params["TaskSid"] == first.sid]

    assert requests.delete(f"{sim.url}/_sim/webhooks/drop").json()["rate"] == 0
    assert requests.post(f"{sim.url}/_sim/webhooks/delivery", json={"copies": 2, "jitter_s": 0.01}).json() == {
        "copies": 2, "jitter_s": 0.01}
    assert requests.post(f"{sim.url}/_sim/webhooks/delivery", json={"copies": 0}).status_code == 400
    second = taskrouter.create_task(workspace.sid, attributes={}, workflow_sid=workflow.sid)
    sim.dispatcher.wait_idle()
    assert len([h for h in receiver.events("task.created") if h.params["TaskSid"] == second.sid]) == 2
