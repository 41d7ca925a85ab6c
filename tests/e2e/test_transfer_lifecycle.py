"""Transfers end to end: the web app over HTTP, the Celery worker as its own process, Redis, the simulator."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.e2e
# Each lifecycle test runs under every reading of Twilio's ambiguous behaviours (conftest.READINGS).
under_every_reading = pytest.mark.usefixtures("reading")


def events_of(stack, task_sid: str, event_type: str):
    return [e for e in stack.simulator.taskrouter.events(stack.scenario.workspace_sid)
            if e.event_type == event_type and e.fields.get("TaskSid") == task_sid]


def delivered(stack, task_sid: str, event_type: str) -> dict[str, list[dict]]:
    """The deliveries of a task's event by each path: the callback's forms, and Event Streams' CloudEvents (the event
    of each batch that carried it, whatever the reading of ``data``)."""
    paths: dict[str, list[dict]] = {"callback": [], "streams": []}
    for delivery in list(stack.simulator.dispatcher.deliveries):
        if delivery.dropped:
            continue
        if delivery.params.get("TaskSid") == task_sid and delivery.params.get("EventType") == event_type:
            paths["callback"].append(dict(delivery.params))
        for event in delivery.events:
            data = event.get("data") or {}
            fields = data.get("payload", data)
            if event.get("type") == "com.twilio.taskrouter." + event_type and fields.get("task_sid") == task_sid:
                paths["streams"].append(fields)
    return paths


def invites_of(stack, conversation):
    return stack.simulator.requests.find("POST", f"/Channels/{conversation.channel_sid}/Invites")


def closes_of(stack, conversation):
    return [r for r in stack.simulator.requests.find("POST", f"/Channels/{conversation.channel_sid}/Participants/")
            if r.status == 200]


def offered_workers(transfer):
    """The agents offered the transfer, in order, each once: TaskRouter may offer an agent who declined the
    task again, before it hears of Baton's re-route, and Baton refuses that offer without counting it."""
    return list(dict.fromkeys(entry["worker_sid"] for entry in transfer["timeline"] if entry["event"] == "offered"))


def new_task(stack, transfer):
    return stack.simulator.taskrouter.task(transfer["new_task_sid"])


def new_task_reaches(stack, transfer, status: str, timeout: float = 10) -> bool:
    """Whether the new task gets to ``status``: a transfer is recorded failed or canceled as soon as that is
    decided, and the task is canceled right after."""
    deadline = time.monotonic() + timeout
    while new_task(stack, transfer).assignment_status != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@under_every_reading
def test_cold_transfer_to_an_agent_who_accepts(stack, baton, conversation):
    """One invite; the sender is closed after, never before, acceptance; the original task completes."""
    carol = stack.scenario.agents["carol"]
    response = baton.transfer("alice", conversation.task_sid, carol)
    assert response.status_code == 202, response.text
    transfer = baton.wait(response.json()["id"])

    assert transfer["status"] == "completed"
    assert offered_workers(transfer) == [carol]
    assert len(invites_of(stack, conversation)) == 1
    (close,) = closes_of(stack, conversation)
    assert close.params["Status"] == "closed"
    (accepted,) = events_of(stack, transfer["new_task_sid"], "reservation.accepted")
    assert close.time >= accepted.timestamp
    assert stack.simulator.taskrouter.task(conversation.task_sid).assignment_status == "completed"
    attributes = new_task(stack, transfer).attributes
    assert attributes["transfer"]["id"] == transfer["id"]
    assert attributes["transfer"]["from_worker_name"] == "Alice"
    assert transfer["names"] == {stack.scenario.agents["alice"]: "Alice", carol: "Carol",
                                 stack.scenario.queues["support"]: "Support"}  # the fallback queue
    assert attributes["conversations"]["conversation_id"] == conversation.conversation_sid
    assert "flexChannelInviteSid" in attributes  # the new invite's own, not the original's
    assert [e["event"] for e in transfer["timeline"]][-3:] == ["accepted", "sender closed", "completed"]


@under_every_reading
@pytest.mark.both_event_paths
def test_rejected_offer_goes_to_the_next_available_agent(stack, baton, conversation):
    """Bob rejects; the fallback queue offers it to Carol (Alice and Bob excluded), who accepts."""
    agents = stack.scenario.agents
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, agents["bob"]).json()["id"])

    assert transfer["status"] == "completed"
    assert offered_workers(transfer) == [agents["bob"], agents["carol"]]
    assert transfer["attempt"] == 2
    assert "offer rejected" in {e["event"] for e in transfer["timeline"]}
    attributes = new_task(stack, transfer).attributes
    assert attributes["transferTargetType"] == "queue"
    assert attributes["transferQueueSid"] == stack.scenario.queues["support"]
    assert attributes["transferExcludedWorkers"] == [agents["alice"], agents["bob"]]
    offered = {e.fields["WorkerSid"] for e in events_of(stack, transfer["new_task_sid"], "reservation.created")}
    assert agents["alice"] not in offered
    assert len(invites_of(stack, conversation)) == 1
    assert len(closes_of(stack, conversation)) == 1


@under_every_reading
def test_offer_left_to_time_out_goes_to_the_next_available_agent(stack, baton, agents, conversation):
    """Bob lets the offer time out; Carol gets it and accepts."""
    sids = stack.scenario.agents
    agents.policy("bob", {"action": "ignore"})
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, sids["bob"]).json()["id"])

    assert transfer["status"] == "completed"
    assert offered_workers(transfer) == [sids["bob"], sids["carol"]]
    assert "offer timeout" in {e["event"] for e in transfer["timeline"]}
    assert transfer["excluded_workers"] == [sids["alice"], sids["bob"]]


@under_every_reading
def test_offline_target_goes_straight_to_the_queue(stack, baton, conversation):
    """Dave is offline at request time: the first route is the queue route, never offered to Dave."""
    sids = stack.scenario.agents
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, sids["dave"]).json()["id"])

    assert transfer["status"] == "completed"
    assert transfer["timeline"][1]["event"] == "target unavailable, routing to queue"
    (created,) = events_of(stack, transfer["new_task_sid"], "task.created")
    assert json.loads(created.fields["TaskAttributes"])["transferTargetType"] == "queue"
    offered = {e.fields["WorkerSid"] for e in events_of(stack, transfer["new_task_sid"], "reservation.created")}
    assert offered and not offered & {sids["dave"], sids["alice"]}
    assert new_task(stack, transfer).assignment_status == "assigned"


@under_every_reading
def test_every_offer_rejected_fails_after_max_attempts(stack, baton, agents, conversation):
    """When every offer is rejected the transfer fails after max_attempts; the sender keeps the customer."""
    agents.policy("carol", {"action": "reject", "delay": 1})
    baton.settings(max_attempts=2)
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, stack.scenario.agents["bob"]).json()["id"])

    assert transfer["status"] == "failed"
    assert transfer["attempt"] == 2
    assert "no agent accepted after 2 offers" in transfer["failure"]["reason"]
    assert new_task_reaches(stack, transfer, "canceled")
    assert closes_of(stack, conversation) == []
    assert stack.simulator.taskrouter.task(conversation.task_sid).assignment_status == "assigned"
    identities = {p.identity for p in
                  stack.simulator.conversations.conversation(conversation.conversation_sid).participants.values()}
    assert "alice" in identities


@under_every_reading
def test_transfer_to_a_queue_completes(stack, baton, conversation):
    """A transfer to the billing queue is taken by an available billing agent."""
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, stack.scenario.queues["billing"]).json()["id"])

    assert transfer["status"] == "completed"
    assert (transfer["route"], transfer["queue_sid"]) == ("queue", stack.scenario.queues["billing"])
    assert offered_workers(transfer) == [stack.scenario.agents["carol"]]
    assert new_task(stack, transfer).queue.sid == stack.scenario.queues["billing"]


@under_every_reading
def test_transfer_to_a_workflow_completes(stack, baton, conversation):
    """A transfer to another workflow creates the new task in that workflow, which routes it."""
    sim, scenario = stack.simulator, stack.scenario
    workflow = sim.taskrouter.create_workflow(scenario.workspace_sid, f"Billing desk {conversation.task_sid[-6:]}", {
        "task_routing": {"filters": [], "default_filter": {"queue": scenario.queues["billing"]}}})
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, workflow.sid).json()["id"])

    assert transfer["status"] == "completed"
    assert transfer["route"] == "workflow"
    assert new_task(stack, transfer).workflow.sid == workflow.sid
    assert offered_workers(transfer) == [scenario.agents["carol"]]


def test_a_queue_offering_several_agents_at_once_completes_with_the_first_acceptance(stack, baton, agents, reading,
                                                                                      conversation):
    """A transfer to the support queue: where the queue reserves several agents, Bob and Carol are offered it
    together; Carol accepts first, Bob's offer is rescinded (not a refusal), and the sender is closed once.
    One agent at a time, the first offered accepts."""
    sids = stack.scenario.agents
    agents.policy("bob", {"action": "accept", "delay": 3})
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, stack.scenario.queues["support"]).json()["id"])

    assert transfer["status"] == "completed"
    assert len(invites_of(stack, conversation)) == 1
    assert len(closes_of(stack, conversation)) == 1
    offered = {e.fields["WorkerSid"] for e in events_of(stack, transfer["new_task_sid"], "reservation.created")}
    rescinded = {e.fields["WorkerSid"] for e in events_of(stack, transfer["new_task_sid"], "reservation.rescinded")}
    if reading == "documented, queues reserving 3":
        assert transfer["accepted_worker_sid"] == sids["carol"]
        assert offered == {sids["bob"], sids["carol"]} and rescinded == {sids["bob"]}
        assert sids["bob"] not in transfer["excluded_workers"]
    else:
        assert transfer["accepted_worker_sid"] == offered_workers(transfer)[0]
        assert rescinded == set()


@under_every_reading
@pytest.mark.both_event_paths
def test_duplicated_and_reordered_webhooks_change_nothing(stack, baton, conversation, events):
    """With every webhook (every Event Streams batch) delivered three times in shuffled order, by one path or both,
    the outcome is the same: one invite, one close."""
    dispatcher = stack.simulator.dispatcher
    dispatcher.copies, dispatcher.jitter_s = 3, 0.03
    try:
        agents = stack.scenario.agents
        transfer = baton.wait(baton.transfer("alice", conversation.task_sid, agents["bob"]).json()["id"])
        dispatcher.wait_idle()
    finally:
        dispatcher.copies, dispatcher.jitter_s = 1, 0.0

    assert transfer["status"] == "completed"
    assert offered_workers(transfer) == [agents["bob"], agents["carol"]]
    assert len(invites_of(stack, conversation)) == 1
    assert len(closes_of(stack, conversation)) == 1
    paths = delivered(stack, transfer["new_task_sid"], "reservation.accepted")
    assert {path: len(copies) for path, copies in paths.items()} == {
        "callback": 3 if events in ("callback", "both") else 0, "streams": 3 if events in ("streams", "both") else 0}
    attributes = [copy.get("TaskAttributes") or copy.get("task_attributes") for copy in paths["callback"] +
                  paths["streams"]]
    assert {json.loads(text)["transfer"]["id"] for text in attributes} == {transfer["id"]}


@pytest.mark.parametrize("events", ["streams"], indirect=True)
def test_batches_redelivered_late_change_nothing(stack, baton, conversation, events):
    """Event Streams retries for hours: every batch comes once more a second later, after the transfer is over.
    Each late copy is answered 200 and changes nothing: one invite, one close, the timeline as it was."""
    streams = stack.simulator.events
    streams.redeliver_after_s = 1.0
    try:
        agents = stack.scenario.agents
        transfer = baton.wait(baton.transfer("alice", conversation.task_sid, agents["bob"]).json()["id"])

        def copies() -> list[dict]:
            return delivered(stack, transfer["new_task_sid"], "reservation.accepted")["streams"]

        deadline = time.monotonic() + 5
        while len(copies()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        streams.redeliver_after_s = None

    assert transfer["status"] == "completed" and len(copies()) == 2
    time.sleep(0.3)  # the worker would have had the late copies by now
    assert baton.get(transfer["id"])["timeline"] == transfer["timeline"]
    assert len(invites_of(stack, conversation)) == 1 and len(closes_of(stack, conversation)) == 1
    late = [d for d in streams.deliveries() if any((e["data"].get("payload") or e["data"]).get("task_sid")
                                                   == transfer["new_task_sid"] for e in d.events)]
    assert late and all(d.status == 200 for d in late)


def test_refused_requests_create_no_invite(stack, baton, conversation):
    """Each refused request answers its status and error code, and no invite ever reaches Twilio."""
    sids, url = stack.scenario.agents, baton.url
    body = {"task_sid": conversation.task_sid, "to": sids["carol"]}

    def post(token=None, **changes):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return baton.session.post(f"{url}/v1/transfers", json={**body, **changes}, headers=headers, timeout=10)

    refusals = [
        (post(), 401, "missing_token"),
        (post("forged"), 401, "invalid_token"),
        (post(baton.tokens["alice"], to="WT" + "0" * 32), 400, "invalid_request"),
        (post(baton.tokens["bob"]), 403, "not_your_task"),
        (post(baton.tokens["alice"], task_sid="WT" + "f" * 32), 404, "task_not_found"),
    ]
    baton.settings(notes_enabled=False)
    refusals.append((post(baton.tokens["alice"], notes="see order 4417"), 422, "notes_disabled"))
    baton.settings(notes_enabled=True)
    first = post(baton.tokens["alice"], to=sids["bob"])
    refusals.append((post(baton.tokens["alice"]), 409, "transfer_in_progress"))

    for response, status, code in refusals:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    baton.wait(first.json()["id"])
    assert len(invites_of(stack, conversation)) == 1
