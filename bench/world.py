"""The stack the transfer figures run on, and the contact center in its simulator.

Baton's processes are started from the Procfile's lines (``baton.operator.devstack``), with production
settings: the defaults, and the workspace's event filter and Conversations webhook as ``baton setup``
writes them. The contact center has, besides the default scenario:

- senders: agents who each hold ``capacity`` customer conversations (routed to them by an inbound
  workflow of their own queue), so that no transfer task is ever offered to one of them;
- rejecters: the targets of transfers, who reject every offer after ``reject_delay_s``;
- the pool: the fallback queue (``FALLBACK_QUEUE_SID``), whose agents accept after ``accept_delay_s``.

A transfer to a rejecter therefore goes: request, offer, reject, re-route, second offer (to the
pool), accept, close of the sender: the complete transfer of the figures. A transfer straight to a
pool agent is one accepted at once (the memory figure's bulk).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field

from baton.domain.twilio_events import CONVERSATION_EVENTS, TRANSFER_EVENTS
from baton.domain.workflow import transfer_workflow_configuration
from baton.operator.devstack import DevStack
from baton.operator.setup import EVENTS_FILTER
from simulator import Simulator
from simulator.scenario import OFFER_TIMEOUT_S, build_default_scenario

SENDER_SKILL, REJECTER_SKILL, POOL_SKILL = "bench-sender", "bench-rejecter", "bench-pool"
WEBHOOK_THREADS = 8


@dataclass(frozen=True)
class Held:
    """A customer conversation a sender holds: what one transfer starts from."""

    sender_sid: str
    task_sid: str
    interaction_sid: str
    channel_sid: str
    conversation_sid: str


@dataclass
class World:
    """The bench's agents and queues in ``stack``'s simulator, and the conversations not yet transferred."""

    stack: DevStack
    senders_queue: str
    pool_queue: str
    inbound_workflow: str
    senders: list[str] = field(default_factory=list)
    rejecters: list[str] = field(default_factory=list)
    pool: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    ready: deque[Held] = field(default_factory=deque)
    _next_sender: itertools.cycle | None = None

    @property
    def sim(self) -> Simulator:
        assert self.stack.simulator is not None
        return self.stack.simulator

    @property
    def workspace_sid(self) -> str:
        assert self.stack.scenario is not None
        return self.stack.scenario.workspace_sid

    def agent(self, name: str, skill: str, steps: list[dict], capacity: int) -> str:
        taskrouter = self.sim.taskrouter
        worker = taskrouter.create_worker(
            self.workspace_sid, name, activity_sid=taskrouter.activity(self.workspace_sid, "Available").sid,
            attributes={"contact_uri": f"client:{name}", "full_name": name, "routing": {"skills": [skill]}})
        taskrouter.update_worker_channel(self.workspace_sid, worker.sid, "chat", capacity=capacity, available=True)
        self.sim.agents.set_policy(worker.sid, steps)
        return worker.sid

    def add_agents(self, *, senders: int, sender_capacity: int, rejecters: int, pool: int,
                   reject_delay_s: float, accept_delay_s: float, capacity: int = 100_000) -> None:
        """Agents of each kind; the policies' delays are simulated seconds."""
        for n in range(senders):
            sid = self.agent(f"sender-{n}", SENDER_SKILL, [{"action": "accept", "delay": 0}], sender_capacity)
            self.senders.append(sid)
            self.identities[sid] = f"sender-{n}"
            self.tokens[sid] = self.sim.iam.mint_token(sid, f"sender-{n}", ttl_seconds=6 * 3600)
        self.rejecters += [self.agent(f"rejecter-{n}", REJECTER_SKILL,
                                      [{"action": "reject", "delay": reject_delay_s}], capacity)
                           for n in range(rejecters)]
        self.pool += [self.agent(f"pool-{n}", POOL_SKILL, [{"action": "accept", "delay": accept_delay_s}], capacity)
                      for n in range(pool)]
        self._next_sender = itertools.cycle(self.senders)

    def open_conversations(self, count: int, messages: int = 2, timeout: float = 120.0) -> list[Held]:
        """``count`` customer conversations, spread over the senders in turn, once each is accepted."""
        flex = self.sim.flex
        opened = []
        for _ in range(count):
            sender = next(self._next_sender)
            interaction = flex.create_interaction(
                {"type": "chat", "initiated_by": "customer", "participants": [{"identity": f"c-{len(opened)}"}]},
                {"properties": {"workspace_sid": self.workspace_sid, "workflow_sid": self.inbound_workflow,
                                "task_channel_unique_name": "chat",
                                "attributes": {"preferredWorkerSid": sender, "customerName": "Chloe",
                                               "channelType": "chat"}}})
            (channel,) = interaction.channels.values()
            held = Held(sender, channel.task_sids[0], interaction.sid, channel.sid, channel.conversation_sid)
            add_messages(self.sim, held, messages, self.identities[sender])
            opened.append(held)
        deadline = time.monotonic() + timeout
        taskrouter = self.sim.taskrouter
        for held in opened:
            while taskrouter.task(held.task_sid).assignment_status != "assigned":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"sender {held.sender_sid} did not accept task {held.task_sid}")
                time.sleep(0.01)
        return opened


def add_messages(sim: Simulator, held: Held, count: int, agent: str) -> None:
    """``count`` messages in turn from the customer and the sender, without webhooks (set-up, not traffic)."""
    conversation = sim.conversations.conversation(held.conversation_sid)
    customer = next(p.identity for p in conversation.participants.values() if p.identity
                    and p.identity.startswith("c-"))
    for n in range(count):
        author = customer if n % 2 == 0 else agent
        sim.conversations.add_message(held.conversation_sid, author,
                                      f"Message {n}: where is my parcel? It was due on Monday.", webhooks=False)


def start_stack(redis_url: str, *, time_scale: float = 1.0, processes: tuple[str, ...] = ("web", "worker", "beat"),
                extra_env: dict[str, str] | None = None) -> World:
    """The simulator, the default scenario and the bench's queues, then Baton's processes, then the webhooks."""
    stack = DevStack(redis_url, time_scale=time_scale, extra_env=dict(extra_env or {}))
    sim = stack.simulator = Simulator(time_scale=time_scale, webhook_threads=WEBHOOK_THREADS)
    sim.serve()
    scenario = stack.scenario = build_default_scenario(sim)
    taskrouter, ws = sim.taskrouter, scenario.workspace_sid
    senders_queue = taskrouter.create_task_queue(ws, "Bench senders",
                                                 target_workers=f'routing.skills HAS "{SENDER_SKILL}"').sid
    pool_queue = taskrouter.create_task_queue(ws, "Bench pool", target_workers=f'routing.skills HAS "{POOL_SKILL}"').sid
    inbound = taskrouter.create_workflow(ws, "Bench inbound", {"task_routing": {"filters": [{
        "filter_friendly_name": "chosen sender", "expression": "1==1",
        "targets": [{"queue": senders_queue, "known_worker_sid": "task.preferredWorkerSid"}]}]}},
        task_reservation_timeout=120).sid
    queues = [*scenario.queues.values(), pool_queue]
    taskrouter.update_workflow(ws, scenario.transfer_workflow_sid, configuration=transfer_workflow_configuration(
        scenario.queues["everyone"], queues, pool_queue, OFFER_TIMEOUT_S))
    stack.extra_env["FALLBACK_QUEUE_SID"] = pool_queue
    world = World(stack, senders_queue, pool_queue, inbound)
    try:
        for name in processes:
            stack.launch(name)
    except Exception:
        stack.stop()
        raise
    return world


def connect(world: World) -> None:
    """Send TaskRouter and Conversations events to Baton, filtered as ``baton setup`` filters them."""
    sim, stack = world.sim, world.stack
    assert set(EVENTS_FILTER.split(",")) == set(TRANSFER_EVENTS)
    sim.taskrouter.update_workspace(world.workspace_sid, event_callback_url=f"{stack.web_url}/webhooks/taskrouter",
                                    events_filter=EVENTS_FILTER)
    sim.conversations.configure_webhooks(post_webhook_url=f"{stack.web_url}/webhooks/conversations",
                                         filters=list(CONVERSATION_EVENTS))
