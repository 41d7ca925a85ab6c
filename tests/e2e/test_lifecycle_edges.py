"""Beyond native Flex, end to end: warm transfers, cancel, the conversation going away, queue-time
closing, robust closes, transfer back and chains, email, and several agents in one conversation."""

from __future__ import annotations

import time

import pytest
from test_transfer_lifecycle import closes_of, events_of, invites_of, new_task, new_task_reaches

from simulator.scenario import open_conversation

pytestmark = pytest.mark.e2e


def agent_participants(stack, conversation):
    """The interaction channel's agent participants, by worker sid."""
    channel = stack.simulator.flex.channel(conversation.interaction_sid, conversation.channel_sid)
    return {p.routing_properties["worker_sid"]: p for p in channel.participants.values() if p.type == "agent"}


def identities(stack, conversation):
    return {p.identity for p in stack.simulator.conversations.conversation(conversation.conversation_sid)
            .participants.values()}


def wait_status(baton, transfer_id, status, timeout=20):
    return baton.wait(transfer_id, states=(status, "completed", "failed", "canceled"), timeout=timeout)


@pytest.mark.usefixtures("reading")
def test_warm_transfer_keeps_both_agents_until_the_sender_leaves(stack, baton, conversation):
    """After acceptance both agents are in the conversation; leaving closes the sender and completes."""
    sids = stack.scenario.agents
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["carol"], mode="warm").json()["id"]
    transfer = wait_status(baton, transfer_id, "accepted")
    assert transfer["status"] == "accepted"
    assert {"alice", "carol"} <= identities(stack, conversation)
    assert closes_of(stack, conversation) == []

    early = baton.session.post(f"{baton.url}/v1/transfers/{transfer_id}/leave",
                               headers={"Authorization": f"Bearer {baton.tokens['bob']}"}, timeout=10)
    assert early.status_code == 403
    left = baton.session.post(f"{baton.url}/v1/transfers/{transfer_id}/leave",
                              headers={"Authorization": f"Bearer {baton.tokens['alice']}"}, timeout=10)
    assert left.status_code == 202
    transfer = baton.wait(transfer_id)
    assert transfer["status"] == "completed"
    (close,) = closes_of(stack, conversation)
    assert close.path.endswith(agent_participants(stack, conversation)[sids["alice"]].sid)
    assert stack.simulator.taskrouter.task(conversation.task_sid).assignment_status == "completed"
    assert "carol" in identities(stack, conversation) and "alice" not in identities(stack, conversation)


def test_warm_transfer_completes_when_the_sender_ends_their_task(stack, baton, conversation):
    """A warm sender who ends their own task completes the transfer, with no close from Baton."""
    sids = stack.scenario.agents
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["carol"], mode="warm").json()["id"]
    assert wait_status(baton, transfer_id, "accepted")["status"] == "accepted"

    alice = agent_participants(stack, conversation)[sids["alice"]]
    stack.simulator.flex.close_participant(conversation.interaction_sid, conversation.channel_sid, alice.sid)
    transfer = baton.wait(transfer_id)
    assert transfer["status"] == "completed"
    assert "sender left" in [e["event"] for e in transfer["timeline"]]
    assert closes_of(stack, conversation) == []


def test_cancel_before_acceptance_and_refused_after(stack, baton, agents, conversation):
    """Canceling a pending transfer cancels its task and keeps the sender; after acceptance it is a 409."""
    sids = stack.scenario.agents
    agents.policy("bob", {"action": "ignore"})
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["bob"]).json()["id"]
    assert wait_status(baton, transfer_id, "offered")["status"] == "offered"
    assert baton.cancel(transfer_id, "alice").status_code == 202
    transfer = baton.wait(transfer_id)
    assert transfer["status"] == "canceled"
    assert new_task_reaches(stack, transfer, "canceled")
    assert stack.simulator.taskrouter.task(conversation.task_sid).assignment_status == "assigned"
    assert closes_of(stack, conversation) == []

    accepted = baton.wait(baton.transfer("alice", conversation.task_sid, sids["carol"]).json()["id"])
    assert accepted["status"] == "completed"
    late = baton.cancel(accepted["id"], "alice")
    assert (late.status_code, late.json()["error"]["code"]) == (409, "already_accepted")


@pytest.mark.parametrize("goes_away", ["conversation closed", "customer left"])
def test_conversation_going_away_cancels_a_pending_transfer(stack, baton, agents, conversation, goes_away):
    """The conversation closing, or the customer leaving, while a transfer waits cancels it and its task."""
    sids, sim = stack.scenario.agents, stack.simulator
    agents.policy("bob", {"action": "ignore"})
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["bob"]).json()["id"]
    assert wait_status(baton, transfer_id, "offered")["status"] == "offered"
    if goes_away == "conversation closed":
        sim.conversations.close_conversation(conversation.conversation_sid)
    else:
        (customer,) = [p for p in sim.conversations.conversation(conversation.conversation_sid).participants.values()
                       if p.identity.startswith("customer-")]
        sim.conversations.remove_participant(conversation.conversation_sid, customer.sid)

    transfer = baton.wait(transfer_id)
    assert transfer["status"] == "canceled"
    assert goes_away in [e["event"] for e in transfer["timeline"]]
    assert new_task_reaches(stack, transfer, "canceled")


def test_queue_transfer_closes_the_sender_on_queue_entry_when_configured(stack, baton, agents, conversation):
    """With close_sender_on=queued the sender is closed when the task enters the queue, before acceptance."""
    baton.settings(close_sender_on="queued")
    agents.policy("bob", {"action": "ignore"})
    agents.policy("carol", {"action": "accept", "delay": 10})
    transfer = baton.wait(baton.transfer("alice", conversation.task_sid, stack.scenario.queues["support"])
                          .json()["id"])

    assert transfer["status"] == "completed"
    (close,) = closes_of(stack, conversation)
    (accepted,) = events_of(stack, transfer["new_task_sid"], "reservation.accepted")
    assert close.time < accepted.timestamp
    assert [e["event"] for e in transfer["timeline"]].index("entered queue, closing sender") < [
        e["event"] for e in transfer["timeline"]].index("accepted")


def test_sender_who_already_left_does_not_stop_the_transfer(stack, baton, agents, conversation):
    """Closing a sender who already left is no error: the transfer still completes."""
    sim, sids = stack.simulator, stack.scenario.agents
    agents.policy("carol", {"action": "accept", "delay": 10})
    transfer_id = baton.transfer("alice", conversation.task_sid, sids["carol"]).json()["id"]
    assert wait_status(baton, transfer_id, "offered")["status"] == "offered"
    # Baton does not hear of it (no Conversations webhook): its own close finds the sender gone.
    sim.conversations.configure_webhooks(post_webhook_url=None)
    try:
        alice = agent_participants(stack, conversation)[sids["alice"]]
        sim.flex.close_participant(conversation.interaction_sid, conversation.channel_sid, alice.sid)
        transfer = baton.wait(transfer_id)
    finally:
        sim.conversations.configure_webhooks(post_webhook_url=f"{stack.web_url}/webhooks/conversations",
                                             filters=["onMessageAdded", "onConversationStateUpdated",
                                                      "onParticipantRemoved"])
    assert transfer["status"] == "completed"
    assert len(closes_of(stack, conversation)) == 1


def test_transfer_back_to_the_first_agent(stack, baton, conversation):
    """A→B then B→A: the second transfer has its own exclusions and reaches the first agent."""
    sids = stack.scenario.agents
    there = baton.wait(baton.transfer("alice", conversation.task_sid, sids["carol"]).json()["id"])
    back = baton.wait(baton.transfer("carol", there["new_task_sid"], sids["alice"]).json()["id"])

    assert (there["status"], back["status"]) == ("completed", "completed")
    assert back["accepted_worker_sid"] == sids["alice"]
    assert back["excluded_workers"] == [sids["carol"]]
    assert back["previous_transfer_id"] == there["id"]
    assert len(invites_of(stack, conversation)) == 2


def test_chained_transfers_are_linked_and_counted(stack, baton, agents, conversation):
    """A→B then B→C: the second links to the first and the new task counts one earlier transfer."""
    sids = stack.scenario.agents
    agents.policy("bob", {"action": "accept", "delay": 1})
    first = baton.wait(baton.transfer("alice", conversation.task_sid, sids["carol"]).json()["id"])
    second = baton.wait(baton.transfer("carol", first["new_task_sid"], sids["bob"]).json()["id"])

    assert second["status"] == "completed"
    assert (second["previous_transfer_id"], second["earlier_transfers"]) == (first["id"], 1)
    attributes = new_task(stack, second).attributes
    assert attributes["transfer"]["previous_transfer_id"] == first["id"]
    assert attributes["transfer"]["earlier_transfers"] == 1


def test_email_conversation_transfers_on_the_email_channel(stack, baton):
    """An email conversation's transfer completes and its new task is on the email channel."""
    email = open_conversation(stack.simulator, stack.scenario, "alice", channel_type="email")
    transfer = baton.wait(baton.transfer("alice", email.task_sid, stack.scenario.agents["carol"]).json()["id"])

    assert transfer["status"] == "completed"
    assert new_task(stack, transfer).task_channel.unique_name == "email"
    assert stack.simulator.taskrouter.task(email.task_sid).task_channel.unique_name == "email"


def test_several_agents_in_the_conversation(stack, baton, agents, conversation):
    """With three agents in the conversation all are excluded, and only the requester's participant is closed."""
    sids = stack.scenario.agents
    agents.policy("bob", {"action": "accept", "delay": 1})
    warm = baton.transfer("alice", conversation.task_sid, sids["carol"], mode="warm").json()["id"]
    carol_holds = wait_status(baton, warm, "accepted")
    onwards = baton.wait(baton.transfer("carol", carol_holds["new_task_sid"], stack.scenario.queues["support"])
                         .json()["id"])

    assert onwards["status"] == "completed"
    assert onwards["accepted_worker_sid"] == sids["bob"]
    assert set(onwards["excluded_workers"]) >= {sids["alice"], sids["carol"]}
    (close,) = closes_of(stack, conversation)
    participants = agent_participants(stack, conversation)
    assert close.path.endswith(participants[sids["carol"]].sid)
    assert participants[sids["alice"]].status is None and participants[sids["bob"]].status is None
    assert {"alice", "bob"} <= identities(stack, conversation)
    time.sleep(0.2)
    assert baton.get(warm)["status"] == "accepted"
