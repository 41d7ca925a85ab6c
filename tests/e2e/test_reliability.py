"""Reliability end to end: events Twilio never delivered are caught up by the reconciliation."""

from __future__ import annotations

import time

import pytest
import redis
from test_transfer_lifecycle import closes_of, invites_of, new_task_reaches

from workers.celery_app import DEADLINE_SWEEP_S

pytestmark = pytest.mark.e2e


@pytest.fixture
def dropping(stack):
    """Make the simulator lose the TaskRouter events of the given types on their way to Baton."""
    dispatcher = stack.simulator.dispatcher

    def drop(*event_types: str) -> None:
        dispatcher.drop = lambda url, params: params.get("EventType") in event_types

    yield drop
    dispatcher.drop = lambda url, params: False


def test_a_lost_acceptance_is_reconciled_from_twilio(stack, baton, dropping, conversation):
    """With reservation.accepted never delivered, the reconciliation finds the acceptance and closes the sender."""
    dropping("reservation.accepted")
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, stack.scenario.agents["carol"]).json()["id"])

    assert transfer["status"] == "completed"
    assert transfer["accepted_worker_sid"] == stack.scenario.agents["carol"]
    assert len(invites_of(stack, conversation)) == 1
    assert len(closes_of(stack, conversation)) == 1
    lost = [d for d in stack.simulator.dispatcher.deliveries
            if d.dropped and d.params.get("TaskSid") == transfer["new_task_sid"]]
    assert [d.params["EventType"] for d in lost] == ["reservation.accepted"]


def test_a_transfer_completes_from_reconciliation_alone(stack, baton, dropping, conversation):
    """With every TaskRouter event lost, the reconciliation alone sees Bob's rejections and Carol's acceptance."""
    dropping("reservation.created", "reservation.accepted", "reservation.rejected", "reservation.timeout",
             "task-queue.entered", "workflow.timeout", "task.canceled")
    sids = stack.scenario.agents
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, sids["bob"]).json()["id"])

    assert transfer["status"] == "completed"
    assert transfer["accepted_worker_sid"] == sids["carol"]
    assert sids["bob"] in transfer["excluded_workers"]
    assert len(closes_of(stack, conversation)) == 1


def test_a_permanent_twilio_error_fails_the_transfer_once(stack, baton, conversation):
    """A target Twilio does not know ends the transfer failed with Twilio's 20404, after one request, no retry loop.

    The one other request is the API's, naming the target for its answers: remembered as nameless, it is
    not asked for again however often the transfer is read."""
    ghost = "WK" + "0" * 32
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, ghost).json()["id"])

    assert (transfer["status"], transfer["failure"]["code"]) == ("failed", 20404)
    baton.get(transfer["id"])
    assert len(stack.simulator.requests.find("GET", f"/Workers/{ghost}")) == 2
    assert invites_of(stack, conversation) == []


def test_beat_fails_a_transfer_past_its_deadline(stack, baton, agents, conversation):
    """A transfer not accepted by its deadline (transfer_timeout_s, kept in Redis) is failed by beat's sweep,
    and its new task is canceled; the sender keeps the conversation."""
    baton.settings(max_attempts=20)
    for name in stack.scenario.agents:
        agents.policy(name, {"action": "ignore", "delay": 0})
    transfer_id = baton.transfer("alice", conversation.task_sid, stack.scenario.agents["bob"]).json()["id"]
    baton.wait(transfer_id, states=("offered",))
    # Time passes: the deadline recorded at creation (600 s away) is now.
    redis.Redis.from_url(stack.redis_url).zadd("baton:deadlines", {transfer_id: time.time()}, xx=True)

    transfer = baton.wait(transfer_id, timeout=DEADLINE_SWEEP_S + 10)
    assert (transfer["status"], transfer["timeline"][-1]["event"]) == ("failed", "transfer timeout")
    assert new_task_reaches(stack, transfer, "canceled")
    assert closes_of(stack, conversation) == []
