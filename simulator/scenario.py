"""The default scenario: a small Flex contact center in the simulator, for the demo and the tests.

Five agents (Alice holds the customer's chat; Bob rejects every offer; Carol accepts; Dave is
offline; Erin is a supervisor), three queues, an inbound workflow that gives each new
conversation to a chosen agent, and Baton's transfer workflow exactly as ``baton setup`` writes it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from baton.domain.workflow import transfer_workflow_configuration
from baton.infrastructure.eventstreams import (
    SINK_DESCRIPTION,
    SUBSCRIBED_TYPES,
    SUBSCRIPTION_DESCRIPTION,
    sink_credentials,
    sink_url,
    with_userinfo,
)
from simulator import Simulator

# Simulated seconds: an offer lasts this long (the transfer workflow's reservation timeout and the
# timeout of its agent step); inbound offers last longer.
OFFER_TIMEOUT_S = 30
RESERVATION_TIMEOUT_S = 60
TASK_CHANNELS = {"chat": "chat", "whatsapp": "chat", "sms": "sms", "email": "email"}
DEFAULT_MESSAGES = (("customer", "Hi, my order 4417 never arrived."), ("agent", "Sorry to hear that, let me check."))

AGENTS = {
    # name: (skills, activity, roles, offer policy)
    "alice": (["support"], "Available", ["agent"], [{"action": "accept", "delay": 0.5}]),
    "bob": (["support"], "Available", ["agent"], [{"action": "reject", "delay": 1}]),
    "carol": (["support", "billing"], "Available", ["agent"], [{"action": "accept", "delay": 1}]),
    "dave": (["billing"], "Offline", ["agent"], [{"action": "accept", "delay": 1}]),
    "erin": (["support"], "Offline", ["agent", "supervisor"], []),
}


@dataclass(frozen=True)
class Conversation:
    """A customer conversation an agent holds: what a transfer starts from."""

    conversation_sid: str
    interaction_sid: str
    channel_sid: str
    task_sid: str
    worker_sid: str


@dataclass(frozen=True)
class Scenario:
    """The sids of the default contact center, and the agents' Flex tokens."""

    account_sid: str
    auth_token: str
    workspace_sid: str
    inbound_workflow_sid: str
    transfer_workflow_sid: str
    queues: dict[str, str]
    agents: dict[str, str]
    tokens: dict[str, str]
    conversation: Conversation

    def baton_environment(self, api_base: str, public_base_url: str) -> dict[str, str]:
        """The environment a Baton deployment against this simulator gets (docs/contracts.md §3.3)."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_WORKSPACE_SID": self.workspace_sid,
            "TRANSFER_WORKFLOW_SID": self.transfer_workflow_sid,
            "PUBLIC_BASE_URL": public_base_url,
            "TWILIO_API_BASE": api_base,
        }

    def describe(self) -> list[str]:
        """A few lines for a person: who is who."""
        lines = [f"Agents         {', '.join(f'{name} {sid}' for name, sid in self.agents.items())}",
                 f"Queues         {', '.join(f'{name} {sid}' for name, sid in self.queues.items())}",
                 f"Conversation   {self.conversation.conversation_sid} held by alice "
                 f"(task {self.conversation.task_sid})",
                 f"Alice's token  {self.tokens['alice']}"]
        return lines


def build_default_scenario(sim: Simulator) -> Scenario:
    """Provision the default contact center (its webhooks go nowhere until ``connect_baton``)."""
    taskrouter = sim.taskrouter
    ws = taskrouter.create_workspace("Baton demo").sid
    queues = {
        "everyone": taskrouter.create_task_queue(ws, "Everyone", target_workers="1==1").sid,
        "support": taskrouter.create_task_queue(ws, "Support", target_workers='routing.skills HAS "support"').sid,
        "billing": taskrouter.create_task_queue(ws, "Billing", target_workers='routing.skills HAS "billing"').sid,
    }
    agents, tokens = {}, {}
    for name, (skills, activity, roles, policy) in AGENTS.items():
        worker = taskrouter.create_worker(
            ws, name.capitalize(), activity_sid=taskrouter.activity(ws, activity).sid,
            attributes={"contact_uri": f"client:{name}", "full_name": name.capitalize(), "routing": {"skills": skills},
                        "roles": roles})
        for channel in set(TASK_CHANNELS.values()):
            taskrouter.update_worker_channel(ws, worker.sid, channel, capacity=10, available=True)
        if policy:
            sim.agents.set_policy(worker.sid, policy)
        agents[name] = worker.sid
        tokens[name] = sim.iam.mint_token(worker.sid, name, roles=roles, ttl_seconds=24 * 3600)
    inbound = taskrouter.create_workflow(ws, "Inbound", {"task_routing": {"filters": [{
        "filter_friendly_name": "chosen agent",
        "expression": "1==1",
        "targets": [{"queue": queues["support"], "known_worker_sid": "task.preferredWorkerSid"}],
    }]}}, task_reservation_timeout=RESERVATION_TIMEOUT_S)
    transfer = taskrouter.create_workflow(
        ws, "Baton transfers",
        transfer_workflow_configuration(queues["everyone"], queues.values(), queues["support"], OFFER_TIMEOUT_S),
        task_reservation_timeout=OFFER_TIMEOUT_S)
    conversation = _routed_conversation(sim, ws, inbound.sid, agents["alice"], "alice", "chat", DEFAULT_MESSAGES)
    return Scenario(sim.account_sid, sim.auth_token, ws, inbound.sid, transfer.sid, queues, agents, tokens,
                    conversation)


# How TaskRouter's events reach Baton: the workspace's callback, an Event Streams sink, or both at once.
EVENT_PATHS = ("callback", "streams", "both")


def connect_baton(sim: Simulator, scenario: Scenario, baton_url: str, events: str = "callback") -> None:
    """Send the workspace's TaskRouter events (by ``events``, one of EVENT_PATHS) and the Conversations post-event
    webhooks to Baton."""
    route_taskrouter_events(sim, scenario, baton_url, events)
    sim.conversations.configure_webhooks(
        post_webhook_url=f"{baton_url}/webhooks/conversations",
        filters=["onMessageAdded", "onConversationStateUpdated", "onParticipantRemoved"])


def route_taskrouter_events(sim: Simulator, scenario: Scenario, baton_url: str, events: str) -> None:
    """TaskRouter's events to Baton by the workspace's callback, by an Event Streams sink with Baton's credentials
    and a subscription to Baton's events (as ``baton setup --events streams`` leaves them), or both.

    Baton's sink, when wanted and already there, is kept; when not wanted, it is deleted with its subscriptions.
    """
    if events not in EVENT_PATHS:
        raise ValueError(f"events is one of {', '.join(EVENT_PATHS)}, not {events!r}")
    callback = f"{baton_url}/webhooks/taskrouter" if events in ("callback", "both") else ""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url=callback)
    destination = with_userinfo(sink_url(baton_url), *sink_credentials(scenario.auth_token, baton_url))
    streams = sim.events
    with sim.lock:
        ours = [sink for sink in streams.sinks.values()
                if sink.sink_type == "webhook" and sink.configuration.get("destination") == destination]
        if events == "callback":
            for sink in ours:
                for subscription in [s for s in streams.subscriptions.values() if s.sink_sid == sink.sid]:
                    streams.delete_subscription(subscription.sid)
                streams.delete_sink(sink.sid)
        elif not ours:
            sink = streams.create_sink(SINK_DESCRIPTION, "webhook",
                                       {"destination": destination, "method": "POST", "batch_events": True})
            streams.activate(sink.sid)  # what setup's test and validation do, when the profile asks for them
            streams.create_subscription(SUBSCRIPTION_DESCRIPTION, sink.sid, [(t, None) for t in SUBSCRIBED_TYPES])


def open_conversation(sim: Simulator, scenario: Scenario, agent: str, channel_type: str = "chat",
                      messages: tuple[tuple[str, str], ...] = DEFAULT_MESSAGES) -> Conversation:
    """A new customer conversation routed to ``agent``, returned once the agent has accepted it.

    ``messages`` are (role, body) pairs posted by the customer ("customer") or the agent ("agent").
    """
    return _routed_conversation(sim, scenario.workspace_sid, scenario.inbound_workflow_sid, scenario.agents[agent],
                                agent, channel_type, messages)


def _routed_conversation(sim: Simulator, workspace_sid: str, workflow_sid: str, worker_sid: str, agent: str,
                         channel_type: str, messages: tuple[tuple[str, str], ...], timeout: float = 10.0
                         ) -> Conversation:
    customer = f"customer-{secrets.token_hex(4)}"
    interaction = sim.flex.create_interaction(
        {"type": channel_type, "initiated_by": "customer", "participants": [{"identity": customer}]},
        {"properties": {"workspace_sid": workspace_sid, "workflow_sid": workflow_sid,
                        "task_channel_unique_name": TASK_CHANNELS[channel_type],
                        "attributes": {"preferredWorkerSid": worker_sid, "customerName": "Chloe",
                                       "channelType": channel_type}}})
    (channel,) = interaction.channels.values()
    task_sid = channel.task_sids[0]
    deadline = time.monotonic() + timeout
    while sim.taskrouter.task(task_sid).assignment_status != "assigned":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{agent} did not accept the conversation's task {task_sid}")
        time.sleep(0.02)
    for role, body in messages:
        sim.conversations.add_message(channel.conversation_sid, customer if role == "customer" else agent, body)
    return Conversation(channel.conversation_sid, interaction.sid, channel.sid, task_sid, worker_sid)
