"""Many transfers at once against the real stack, each with a scripted outcome; counts what happened.

Every transfer goes to its own target agent, whose script says what that agent does with the offer:
``accept`` (completed by that agent), ``reject`` or ``ignore`` (the offer is declined or times out:
completed by another agent of the fallback queue), or the transfer goes to a queue of agents who all
reject (``unanswerable``: failed after ``max_attempts``). Every webhook is delivered ``copies`` times
in shuffled order. A transfer is right when it ends as its script says, with exactly one invite and
at most one close of its sender.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from baton.domain.transfers import FINAL_STATES
from baton.domain.workflow import transfer_workflow_configuration
from baton.infrastructure.store import Store, connect_redis
from baton.operator.devstack import DevStack
from simulator.scenario import OFFER_TIMEOUT_S, TASK_CHANNELS

SCRIPTS = {"accept": 0.4, "reject": 0.25, "ignore": 0.15, "unanswerable": 0.2}
FAULT_KINDS = (429, 500, 503, "drop")
EXPECTED = {"accept": "completed", "reject": "completed", "ignore": "completed", "unanswerable": "failed"}
ADMIN_TOKEN = "load-test-admin-token-0123456789abcdef012345"
MAX_ATTEMPTS = 3
SENDER_CAPACITY = 10  # transfers per sender: under the per-agent rate limit of the agent API
POOL_AGENTS = 8
REJECTERS = MAX_ATTEMPTS + 1


@dataclass
class LoadResult:
    """What the load run saw; ``wrong`` lists the transfers that did not end as scripted."""

    transfers: int
    seconds: float
    outcomes: Counter = field(default_factory=Counter)
    stuck: int = 0
    duplicate_invites: int = 0
    duplicate_closes: int = 0
    twilio_faults: int = 0
    wrong: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stuck or self.duplicate_invites or self.duplicate_closes or self.wrong)

    def report(self) -> str:
        lines = [f"{self.transfers} transfers in {self.seconds:.1f} s"]
        lines += [f"  {script:<13} -> {status:<9} {count}" for (script, status), count in sorted(self.outcomes.items())]
        lines += [f"  Twilio requests failed on purpose: {self.twilio_faults}", f"  stuck: {self.stuck}",
                  f"  transfers with more than one invite: {self.duplicate_invites}",
                  f"  transfers with more than one close: {self.duplicate_closes}",
                  f"  not as scripted: {len(self.wrong)}"]
        return "\n".join(lines + self.details)


@dataclass(frozen=True)
class _Planned:
    script: str
    sender_sid: str
    task_sid: str
    channel_sid: str
    target_sid: str


def run_load(transfers: int, redis_url: str, *, seed: int = 7, copies: int = 2, fault_rate: float = 0.0,
             time_scale: float = 0.05, timeout: float = 300.0, profile: str = "documented") -> LoadResult:
    """Run ``transfers`` scripted transfers at once on a fresh stack and count the outcomes.

    ``fault_rate``: the share of Twilio requests (Baton's web and worker alike) that fail, evenly
    429 with Retry-After, 500, 503 and dropped connections. ``profile``: the simulator's reading of
    Twilio's ambiguous behaviours (simulator/profiles.py).
    """
    rng = random.Random(seed)
    stack = DevStack(redis_url, time_scale=time_scale, extra_env={
        "ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": "load-test-secret-key-0123", "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "RECONCILE_EVERY_S": "2", "RECONCILE_AFTER_S": "10"})
    stack.start()
    try:
        stack.simulator.profile.update(profile)
        plan = _provision(stack, transfers, rng)
        stack.simulator.dispatcher.copies, stack.simulator.dispatcher.jitter_s = copies, 0.01
        for number, kind in enumerate(FAULT_KINDS):
            if fault_rate:
                stack.simulator.faults.add(kind=kind, rate=fault_rate / len(FAULT_KINDS), seed=seed + number,
                                           retry_after=1)
        started = time.monotonic()
        ids = _submit(stack, plan)
        store = Store(connect_redis(redis_url))
        finals = _wait(store, ids, deadline=started + timeout)
        result = _count(stack, plan, ids, finals, time.monotonic() - started)
        result.twilio_faults = stack.simulator.faults.count()
        return result
    finally:
        # Webhooks still on their way would each fail, loudly, against the stopped web process.
        stack.simulator.dispatcher.drop = lambda url, params: True
        stack.stop()


def _provision(stack: DevStack, transfers: int, rng: random.Random) -> list[_Planned]:
    """Agents, queues and one conversation held by a sender for every transfer."""
    sim, scenario = stack.simulator, stack.scenario
    taskrouter, ws = sim.taskrouter, scenario.workspace_sid
    available = taskrouter.activity(ws, "Available").sid

    def agent(name: str, skills: list[str], policy: list[dict], capacity: int = 1) -> str:
        worker = taskrouter.create_worker(ws, name, activity_sid=available, attributes={
            "contact_uri": f"client:{name}", "routing": {"skills": skills}})
        taskrouter.update_worker_channel(ws, worker.sid, "chat", capacity=capacity, available=True)
        if policy:
            sim.agents.set_policy(worker.sid, policy)
        return worker.sid

    rejecters = taskrouter.create_task_queue(ws, "Load rejecters", target_workers='routing.skills HAS "rejecter"').sid
    queues = [*scenario.queues.values(), rejecters]
    taskrouter.update_workflow(ws, scenario.transfer_workflow_sid, configuration=transfer_workflow_configuration(
        scenario.queues["everyone"], queues, scenario.queues["support"], OFFER_TIMEOUT_S))
    for n in range(POOL_AGENTS):
        agent(f"pool-{n}", ["support"], [{"action": "accept", "delay": 2}], capacity=transfers)
    for n in range(REJECTERS):
        agent(f"rejecter-{n}", ["rejecter"], [{"action": "reject", "delay": 1}], capacity=transfers)
    # Senders are in the inbound queue (support); full with their own conversations, they take no transfer.
    senders = [agent(f"sender-{n}", ["support"], [{"action": "accept", "delay": 0.2}], capacity=SENDER_CAPACITY)
               for n in range(-(-transfers // SENDER_CAPACITY))]

    scripts = rng.choices(list(SCRIPTS), weights=list(SCRIPTS.values()), k=transfers)
    pending = []
    for n, script in enumerate(scripts):
        if script == "unanswerable":
            target = rejecters
        else:
            target = agent(f"target-{n}", [], [{"accept": {"action": "accept", "delay": 3},
                                                "reject": {"action": "reject", "delay": 2},
                                                "ignore": {"action": "ignore"}}[script]])
        sender = senders[n // SENDER_CAPACITY]
        interaction = sim.flex.create_interaction(
            {"type": "chat", "initiated_by": "customer", "participants": [{"identity": f"load-customer-{n}"}]},
            {"properties": {"workspace_sid": ws, "workflow_sid": scenario.inbound_workflow_sid,
                            "task_channel_unique_name": TASK_CHANNELS["chat"],
                            "attributes": {"preferredWorkerSid": sender}}})
        (channel,) = interaction.channels.values()
        pending.append(_Planned(script, sender, channel.task_sids[0], channel.sid, target))
    deadline = time.monotonic() + 60
    while any(taskrouter.task(p.task_sid).assignment_status != "assigned" for p in pending):
        if time.monotonic() > deadline:
            raise TimeoutError("the senders did not accept their conversations")
        time.sleep(0.1)
    return pending


def _submit(stack: DevStack, plan: list[_Planned]) -> list[str]:
    tokens = {sender: stack.simulator.iam.mint_token(sender, sender, ttl_seconds=3600)
              for sender in {p.sender_sid for p in plan}}
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))

    def post(planned: _Planned) -> str:
        # As a Flex plugin would: a 503 (Twilio or Redis away) is retried with the same Idempotency-Key.
        headers = {"Authorization": f"Bearer {tokens[planned.sender_sid]}", "Idempotency-Key": planned.task_sid}
        for _ in range(20):
            response = session.post(f"{stack.web_url}/v1/transfers", timeout=30, headers=headers,
                                    json={"task_sid": planned.task_sid, "to": planned.target_sid})
            if response.status_code != 503:
                break
            time.sleep(float(response.headers.get("Retry-After", 0.2)))
        response.raise_for_status()
        return response.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(post, plan))


def _wait(store: Store, ids: list[str], deadline: float) -> dict[str, object]:
    finals: dict[str, object] = {}
    while len(finals) < len(ids) and time.monotonic() < deadline:
        for transfer_id in ids:
            if transfer_id not in finals:
                record = store.load(transfer_id)
                if record is not None and record.transfer.status in FINAL_STATES and not record.outbox:
                    finals[transfer_id] = record.transfer
        time.sleep(0.5)
    return finals


def _count(stack: DevStack, plan: list[_Planned], ids: list[str], finals: dict, seconds: float) -> LoadResult:
    result = LoadResult(transfers=len(plan), seconds=seconds)
    requests_log = stack.simulator.requests
    invites = Counter(r.path.split("/Channels/")[1].split("/")[0] for r in requests_log.find("POST", "/Invites")
                      if r.status is not None and r.status < 300)
    closes = Counter(r.path.split("/Channels/")[1].split("/")[0]
                     for r in requests_log.find("POST", "/Participants/") if r.status is not None and r.status < 300)
    for planned, transfer_id in zip(plan, ids, strict=True):
        transfer = finals.get(transfer_id)
        if transfer is None:
            result.stuck += 1
            result.wrong.append(transfer_id)
            continue
        result.outcomes[(planned.script, transfer.status)] += 1
        result.duplicate_invites += invites[planned.channel_sid] > 1
        result.duplicate_closes += closes[planned.channel_sid] > 1
        right_agent = (transfer.accepted_worker_sid == planned.target_sid) == (planned.script == "accept")
        if transfer.status != EXPECTED[planned.script] or (transfer.status == "completed" and not right_agent):
            result.wrong.append(transfer_id)
            steps = ", ".join(f"{e.event}" + (f" ({e.reason})" if e.reason else "") for e in transfer.timeline[-4:])
            result.details.append(f"  {transfer_id} ({planned.script}): {transfer.status}: … {steps}")
    return result
