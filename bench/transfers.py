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

from baton.domain.transfers import COMPLETED, FINAL_STATES, Transfer
from baton.infrastructure.store import Store
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


def post_transfers(world: World, pairs: Sequence[tuple[Held, str]], rate: float, threads: int = 16) -> list[Sent]:
    """``POST /v1/transfers`` for each (conversation, target) at ``rate`` per second, from ``bench.loadgen``."""
    folder = Path(tempfile.mkdtemp(prefix="baton-bench-load-"))
    plan = {"url": world.stack.web_url, "rate": rate, "threads": threads,
            "transfers": [{"token": world.tokens[held.sender_sid], "task_sid": held.task_sid, "to": to}
                          for held, to in pairs]}
    (folder / "plan.json").write_text(json.dumps(plan))
    subprocess.run([sys.executable, "-m", "bench.loadgen", str(folder / "plan.json"), str(folder / "results.json")],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    results = json.loads((folder / "results.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    return [Sent(held, to, r.get("due", 0.0), r.get("sent", 0.0), r.get("answered", 0.0), r.get("status"),
                 r.get("id")) for (held, to), r in zip(pairs, results, strict=True)]


def wait_finished(store: Store, ids: Iterable[str], timeout: float) -> dict[str, Transfer]:
    """The transfers once each is final with nothing left to do, or as they are at ``timeout``."""
    waiting, found = set(ids), {}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for transfer_id in list(waiting):
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
