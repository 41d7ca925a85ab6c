"""Signed events that do not tell the truth, end to end through the web and the worker processes.

A signed event proves Twilio sent it once, not that it is about this transfer now: an event for
another task that carries the transfer's id, or a participant's removal replayed while they are still
in the conversation, must not end a transfer (issue: a security probe of the running stack).
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests
from test_lifecycle_edges import wait_status
from test_transfer_lifecycle import closes_of
from twilio.request_validator import RequestValidator

pytestmark = pytest.mark.e2e


def post_signed(stack, path: str, form: dict[str, str]) -> requests.Response:
    """Post ``form`` to Baton as Twilio would, signed with the account's auth token."""
    url = stack.web_url + path
    signature = RequestValidator(stack.scenario.auth_token).compute_signature(url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def test_an_acceptance_of_another_task_before_the_invite_is_known_never_completes_the_transfer(stack, baton,
                                                                                               conversation):
    """While the invite keeps failing, a signed reservation.accepted of another task naming the transfer
    arrives: the transfer is not accepted by that agent, and ends with the agent who had its real task."""
    sim, sids = stack.simulator, stack.scenario.agents
    sim.faults.add(method="POST", path=f"/Channels/{conversation.channel_sid}/Invites", kind=503, times=2)
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["carol"]).json()["id"]
    deadline = time.monotonic() + 10
    while not sim.requests.find("POST", f"/Channels/{conversation.channel_sid}/Invites"):
        assert time.monotonic() < deadline, "the invite was never tried"
        time.sleep(0.02)

    forged = post_signed(stack, "/webhooks/taskrouter", {
        "EventType": "reservation.accepted", "Sid": "EV" + secrets.token_hex(16), "AccountSid": sim.account_sid,
        "WorkspaceSid": stack.scenario.workspace_sid, "TaskSid": "WT" + secrets.token_hex(16),
        "ReservationSid": "WR" + secrets.token_hex(16), "WorkerSid": sids["bob"],
        "TaskAttributes": json.dumps({"transfer": {"id": transfer_id}}), "ResourceType": "reservation",
        "Timestamp": str(int(time.time()))})
    assert forged.status_code == 204

    transfer = baton.wait(transfer_id)
    assert (transfer["status"], transfer["accepted_worker_sid"]) == ("completed", sids["carol"])
    assert sids["bob"] not in [entry.get("worker_sid") for entry in transfer["timeline"]]
    assert len(closes_of(stack, conversation)) == 1


def test_a_replayed_removal_of_the_sender_does_not_end_a_warm_transfer(stack, baton, conversation):
    """A warm transfer is accepted; a signed onParticipantRemoved of the sender, replayed while the sender is
    still in the conversation, changes nothing; the sender's real leaving completes it."""
    sim, sids = stack.simulator, stack.scenario.agents
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["carol"], mode="warm").json()["id"]
    assert wait_status(baton, transfer_id, "accepted")["status"] == "accepted"
    chat = sim.conversations.conversation(conversation.conversation_sid)
    (alice,) = [p for p in chat.participants.values() if p.identity == "alice"]

    for participant_sid in (alice.sid, "MB" + secrets.token_hex(16)):  # replayed, and an earlier participant of hers
        replay = post_signed(stack, "/webhooks/conversations", {
            "EventType": "onParticipantRemoved", "AccountSid": sim.account_sid, "Source": "SDK",
            "ConversationSid": conversation.conversation_sid, "ParticipantSid": participant_sid,
            "Identity": "alice", "DateUpdated": "2026-11-20T14:09:42.000Z"})
        assert replay.status_code == 200
    time.sleep(1.0)  # the worker has had the replays (a few milliseconds each)
    assert baton.get(transfer_id)["status"] == "accepted"

    left = baton.session.post(f"{baton.url}/v1/transfers/{transfer_id}/leave",
                              headers={"Authorization": f"Bearer {baton.tokens['alice']}"}, timeout=10)
    assert left.status_code == 202
    assert baton.wait(transfer_id)["status"] == "completed"
