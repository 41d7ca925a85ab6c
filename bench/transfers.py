"""Figures 3 to 7: transfers end to end, driven by ``bench.loadgen`` and timed by the simulator.

Times come from the simulator's own records, on the machine's one clock: when it began sending a
webhook (``Delivery.sent_at``) and when a request of Baton's arrived (``LoggedRequest.received``);
and from the load generator: when it sent ``POST /v1/transfers``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from baton.domain.transfers import COMPLETED, FINAL_STATES, Transfer
from baton.infrastructure.store import Store, connect_redis
from baton.operator.devstack import RedisServer
from bench.ingest import process_tree_cpu
from bench.world import Held, World

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sent:
    """One transfer request as the load generator saw it, and what it was about."""

    held: Held
    to: str
    due: float
    sent: float
    answered: float
    status: int | None
    transfer_id: str | None


class LoadPlan:
    """The transfers ``bench.loadgen`` asks for, in a process of its own: first its warm-up (one authenticated read
    per agent's token, as a Flex UI's first poll makes it, so that IAM's answer is cached), then the transfers."""

    def __init__(self, world: World, pairs: Sequence[tuple[Held, str]], rate: float, threads: int = 16):
        self.pairs = pairs
        self.folder = Path(tempfile.mkdtemp(prefix="baton-bench-load-"))
        plan = {"url": world.stack.web_url, "rate": rate, "threads": threads,
                "transfers": [{"token": world.tokens[held.sender_sid], "task_sid": held.task_sid, "to": to}
                              for held, to in pairs]}
        (self.folder / "plan.json").write_text(json.dumps(plan))

    def _loadgen(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "bench.loadgen", *args, str(self.folder / "plan.json")], cwd=ROOT,
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def warm(self) -> None:
        self._loadgen("warm")

    def post(self) -> list[Sent]:
        """``POST /v1/transfers`` for each (conversation, target) at the plan's rate."""
        self._loadgen("post", "--results", str(self.folder / "results.json"))
        results = json.loads((self.folder / "results.json").read_text())
        shutil.rmtree(self.folder, ignore_errors=True)
        return [Sent(held, to, r.get("due", 0.0), r.get("sent", 0.0), r.get("answered", 0.0), r.get("status"),
                     r.get("id")) for (held, to), r in zip(self.pairs, results, strict=True)]


def post_transfers(world: World, pairs: Sequence[tuple[Held, str]], rate: float, threads: int = 16) -> list[Sent]:
    """The load generator's warm-up, then ``POST /v1/transfers`` for each (conversation, target) at ``rate``."""
    plan = LoadPlan(world, pairs, rate, threads)
    plan.warm()
    return plan.post()


def wait_finished(store: Store, ids: Iterable[str], timeout: float,
                  reads: Counter | None = None) -> dict[str, Transfer]:
    """The transfers once each is final with nothing left to do, or as they are at ``timeout``; ``reads`` counts the
    Redis commands this took (one GET per look at a transfer)."""
    waiting, found = set(ids), {}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for transfer_id in list(waiting):
            if reads is not None:
                reads["get"] += 1
            record = store.load(transfer_id)
            if record is not None:
                found[transfer_id] = record.transfer
                if record.transfer.status in FINAL_STATES and not record.outbox:
                    waiting.discard(transfer_id)
        if waiting:
            time.sleep(1.0)
    return found


def reaction_times(world: World, transfers: Iterable[Transfer]) -> list[float]:
    """Per declined offer: from the simulator sending ``reservation.rejected`` to it receiving the new
    task's re-routing update (``POST …/Tasks/{WT}`` with ``Attributes``), in seconds."""
    new_tasks = {t.new_task_sid for t in transfers if t.new_task_sid}
    rejections: dict[str, list[float]] = {}
    for delivery in list(world.sim.dispatcher.deliveries):
        if delivery.params.get("EventType") == "reservation.rejected" and delivery.params.get("TaskSid") in new_tasks:
            if delivery.sent_at is not None and delivery.status is not None and delivery.status < 300:
                rejections.setdefault(delivery.params["TaskSid"], []).append(delivery.sent_at)
    updates: dict[str, list[float]] = {}
    for entry in world.sim.requests.find("POST", "/Tasks/", product="taskrouter"):
        task_sid = entry.path.rsplit("/", 1)[-1]
        if task_sid in new_tasks and "Attributes" in entry.params and entry.status == 200 and entry.received:
            updates.setdefault(task_sid, []).append(entry.received)
    times = []
    for task_sid, sent in rejections.items():
        for rejected_at in sorted(sent)[:1]:  # the first rejection: the target's
            after = [received for received in updates.get(task_sid, ()) if received >= rejected_at]
            if after:
                times.append(min(after) - rejected_at)
    return times


def rejection_paths(world: World, transfers: Iterable[Transfer]) -> list[tuple[float, int]]:
    """Per transfer whose target declined: from the simulator sending that ``reservation.rejected`` to it sending
    the next offer to another agent (seconds: what the customer waits), and Baton's Twilio requests about the new
    task in between (reads, re-routing writes, refusals), which against Twilio's 100-300 ms each are most of it."""
    by_task = {t.new_task_sid: t.target_sid for t in transfers if t.new_task_sid}
    rejected: dict[str, float] = {}
    offered: dict[str, list[float]] = {}
    for delivery in list(world.sim.dispatcher.deliveries):
        task_sid, params = delivery.params.get("TaskSid"), delivery.params
        if task_sid not in by_task or delivery.sent_at is None:
            continue
        if params.get("EventType") == "reservation.rejected" and params.get("WorkerSid") == by_task[task_sid]:
            rejected[task_sid] = min(rejected.get(task_sid, delivery.sent_at), delivery.sent_at)
        elif params.get("EventType") == "reservation.created" and params.get("WorkerSid") != by_task[task_sid]:
            offered.setdefault(task_sid, []).append(delivery.sent_at)
    requests: dict[str, list[float]] = {}
    for entry in world.sim.requests.find(product="taskrouter"):
        parts = entry.path.split("/")
        task_sid = parts[parts.index("Tasks") + 1] if "Tasks" in parts[:-1] else None
        if task_sid in rejected and entry.received is not None:
            requests.setdefault(task_sid, []).append(entry.received)
    paths = []
    for task_sid, rejected_at in rejected.items():
        next_offer = min((at for at in offered.get(task_sid, ()) if at > rejected_at), default=None)
        if next_offer is not None:
            made = sum(1 for at in requests.get(task_sid, ()) if rejected_at <= at <= next_offer)
            paths.append((next_offer - rejected_at, made))
    return paths


def invite_times(world: World) -> dict[str, float]:
    """When the first invite of each interaction channel arrived at the simulator, by channel sid."""
    invites: dict[str, float] = {}
    for entry in world.sim.requests.find("POST", "/Invites", product="flex-api"):
        channel_sid = entry.path.split("/Channels/")[1].split("/")[0]
        if entry.received and channel_sid not in invites:
            invites[channel_sid] = entry.received
    return invites


def start_times(world: World, sent: Iterable[Sent]) -> dict[str, float]:
    """Per transfer (by channel sid): from the load generator sending ``POST /v1/transfers`` to the
    invite arriving at the simulator, in seconds."""
    invites = invite_times(world)
    return {s.held.channel_sid: invites[s.held.channel_sid] - s.sent for s in sent if s.held.channel_sid in invites}


def twilio_requests_between(world: World, start: float, end: float) -> Counter:
    """The simulator's REST requests received in [start, end], by method and path shape."""
    shapes: Counter = Counter()
    for entry in world.sim.requests.find():
        if entry.received is not None and start <= entry.received <= end:
            shapes[f"{entry.method} {path_shape(entry.path)}"] += 1
    return shapes


def path_shape(path: str) -> str:
    return "/".join(part[:2] + "…" if len(part) == 34 and part[:2].isalpha() else part for part in path.split("/"))


def completed_at(transfer: Transfer) -> float | None:
    for entry in reversed(transfer.timeline):
        if entry.state == COMPLETED:
            return entry.at
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def cpu(world: World, redis_pid: int) -> dict[str, float]:
    """CPU seconds so far of Baton's processes, of Redis, of the simulator and of the harness.

    The simulator and the harness share this process: the simulator runs in its other threads (HTTP
    server, clock, webhook delivery), the harness (asking for transfers, polling for their end) in
    the main thread, the one that calls this.
    """
    usage = {name: process_tree_cpu(process.popen.pid) for name, process in world.stack.processes.items()}
    usage["redis"] = process_tree_cpu(redis_pid)
    harness = time.thread_time()
    usage["simulator"] = time.process_time() - harness
    usage["harness"] = harness
    return usage


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 1) for name in after}


class TransferBench:
    """The transfer stack, its conversations and the phases that measure figures 3 to 7."""

    def __init__(self, world: World, redis_server: RedisServer):
        self.world = world
        self.store = Store(connect_redis(redis_server.url))
        self.redis_pid = redis_server.popen.pid
        self.redis = redis.Redis.from_url(redis_server.url)
        self.finished = 0

    def redis_counts(self) -> dict[str, int]:
        """Redis's counters so far: connections accepted, and calls by command."""
        counts = {"connections": int(self.redis.info("stats")["total_connections_received"])}
        counts.update({name.removeprefix("cmdstat_"): int(stat["calls"])
                       for name, stat in self.redis.info("commandstats").items()})
        return counts

    def pairs(self, conversations: list[Held], targets: list[str]) -> list[tuple[Held, str]]:
        return [(held, targets[n % len(targets)]) for n, held in enumerate(conversations)]

    def run(self, pairs: list[tuple[Held, str]], rate: float, drain_s: float) -> tuple[list[Sent], dict[str, Any]]:
        """Post the transfers at ``rate``, wait for them to finish (``drain_s`` at most after the last)."""
        plan = LoadPlan(self.world, pairs, rate)
        # The warm-up's IAM validations are not the transfers' doing: neither its CPU nor its Redis commands count.
        plan.warm()
        before, redis_before = cpu(self.world, self.redis_pid), self.redis_counts()
        sent = plan.post()
        refused = Counter(s.status for s in sent if s.status != 202)
        harness_reads: Counter = Counter()
        finals = wait_finished(self.store, [s.transfer_id for s in sent if s.transfer_id], drain_s, harness_reads)
        self.finished += len(finals)
        spent = cpu_delta(before, cpu(self.world, self.redis_pid))
        # From the first request for a transfer (the warm-up's Twilio requests, just before, are left out too).
        first = min((s.sent for s in sent if s.sent), default=time.time())
        twilio_requests = sum(twilio_requests_between(self.world, first, time.time()).values())
        redis_after = self.redis_counts()
        # Less the harness's own: its reads of the transfers while waiting for them, and the INFO of redis_counts.
        redis_delta = {name: redis_after[name] - redis_before.get(name, 0) - harness_reads[name]
                       for name in redis_after if name != "info"}
        return sent, {"finals": finals, "refused": dict(refused), "cpu_s": spent,
                      "redis": {name: calls for name, calls in redis_delta.items() if calls > 0},
                      "twilio_requests": twilio_requests}


def ms(seconds: list[float]) -> list[float]:
    return [round(value * 1000, 2) for value in seconds]


def transfer_phase(world: World, sent: list[Sent], info: dict[str, Any]) -> dict[str, Any]:
    finals = info["finals"]
    done = sorted(at for t in finals.values() if (at := completed_at(t)) is not None)
    sent_at = sorted(s.sent for s in sent if s.sent)
    statuses = Counter(t.status for t in finals.values())
    completed = statuses.get("completed", 0)
    paths = rejection_paths(world, finals.values())
    durations = [at - s.sent for s in sent if s.transfer_id in finals
                 and (at := completed_at(finals[s.transfer_id])) is not None]
    return {
        "offered": len(sent),
        "offered_rate": round((len(sent_at) - 1) / max(sent_at[-1] - sent_at[0], 1e-9), 1) if sent_at else 0.0,
        "statuses": dict(statuses),
        "refused": info["refused"],
        # The pace at which transfers completed, from the first completion to the last.
        "completed_per_s": round((len(done) - 1) / max(done[-1] - done[0], 1e-9), 2) if len(done) > 1 else 0.0,
        "request_to_completion_s": {"p50": _round(percentile(durations, 50)), "p99": _round(percentile(durations, 99)),
                                    "last_after_first_request": _round(done[-1] - sent_at[0]) if done else None},
        "reaction_ms": ms(reaction_times(world, finals.values())),
        "start_ms": ms(list(start_times(world, sent).values())),
        "cpu_s": info["cpu_s"],
        "redis_connections_opened": info["redis"].get("connections", 0),
        "redis_calls_per_completed": {name: round(calls / completed, 1) for name, calls in sorted(
            info["redis"].items(), key=lambda item: -item[1]) if name != "connections"} if completed else {},
        "cpu_ms_per_completed": {name: round(seconds * 1000 / completed, 1) for name, seconds in info["cpu_s"].items()
                                 } if completed else {},
        "twilio_requests_per_completed": round(info["twilio_requests"] / completed, 1) if completed else None,
        "cost_per_completed": _cost(info, completed),
        "rejection_to_next_offer_ms": ms([seconds for seconds, _ in paths]),
        "rejection_to_next_offer_twilio_requests": [made for _, made in paths],
        "refused_reoffers_per_transfer": round(sum(
            1 for t in finals.values() for e in t.timeline if e.event == "offer to excluded agent refused")
            / max(len(finals), 1), 2),
    }


def _cost(info: dict[str, Any], completed: int) -> dict[str, float] | None:
    """What one complete transfer cost: Twilio requests, Redis commands (without the workers' metric samples, sent
    once a second whatever the load: ``metric_flush_commands``), Celery tasks enqueued (kombu's LPUSH) and the CPU of
    Baton's own processes, web and worker."""
    if not completed:
        return None
    redis_calls = info["redis"]
    return {"twilio_requests": round(info["twilio_requests"] / completed, 1),
            "redis_commands": round(sum(calls for name, calls in redis_calls.items()
                                        if name not in ("connections", "hincrbyfloat")) / completed, 1),
            "metric_flush_commands": round(redis_calls.get("hincrbyfloat", 0) / completed, 1),
            "celery_tasks": round(redis_calls.get("lpush", 0) / completed, 1),
            "baton_cpu_ms": round((info["cpu_s"]["web"] + info["cpu_s"]["worker"]) * 1000 / completed, 1)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
