"""A Celery worker SIGKILLed at each step boundary of a transfer; a new worker finishes every transfer
with exactly one invite and at most one close."""

from __future__ import annotations

import pytest
from test_transfer_lifecycle import closes_of, invites_of

pytestmark = pytest.mark.e2e

# Where the worker dies: the Twilio request it is waiting on, and whether Twilio had acted on it.
KILL_POINTS = {
    "before the invite": ("GET", "/Participants", "before"),
    "while the invite request is in flight": ("POST", "/Invites", "before"),
    "after the invite, before its result is stored": ("POST", "/Invites", "after"),
    "while closing the sender": ("POST", "/Participants/UT", "after"),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_transfer_survives_a_worker_killed(stack, baton, conversation, point):
    """SIGKILL of the worker's process group at this point; a new worker completes the transfer."""
    method, path, when = KILL_POINTS[point]
    sim = stack.simulator
    hold = sim.faults.add(method=method, path=path, kind="hold", when=when, times=1)
    try:
        transfer_id = baton.transfer("alice", conversation.task_sid, stack.scenario.agents["carol"]).json()["id"]
        assert hold.wait(count=1, timeout=20), "the worker never reached the held request"
        stack.kill("worker")
    finally:
        hold.release()
        hold.remove()
    stack.launch("worker")
    transfer = baton.wait(transfer_id, timeout=60)

    assert transfer["status"] == "completed", transfer["timeline"]
    assert len([r for r in invites_of(stack, conversation) if r.status and r.status < 300]) == 1
    assert len(closes_of(stack, conversation)) <= 1
    assert sim.taskrouter.task(conversation.task_sid).assignment_status == "completed"
