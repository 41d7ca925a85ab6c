"""Figures 1 and 2: how many signed TaskRouter events the web process takes, against a bare endpoint.

The load comes from ``wrk`` (Debian's package), a separate process in C, replaying forms signed
here beforehand (``bench/signed.lua``). The bare endpoint (``bench/bare.py``) runs under the
Procfile's own ``web`` command line with only the application swapped, so the two differ in what
the application does and in nothing else; they are measured one after the other in the same run.
"""

from __future__ import annotations

import json
import os
import random
import resource
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from baton.domain.transfers import new_transfer_id

LUA_SCRIPT = Path(__file__).resolve().parent / "signed.lua"

# What a Flex workspace sends most: events of ordinary tasks. After ``baton setup`` the workspace's
# EventsFilter lets through only the types Baton acts on (baton.domain.twilio_events TRANSFER_EVENTS), so most of
# what arrives is of those types, about tasks that are not transfers; a few other types are mixed in
# for a workspace whose filter was widened.
NON_TRANSFER_MIX = (("reservation.created", 30), ("reservation.accepted", 20), ("task-queue.entered", 20),
                    ("reservation.rejected", 5), ("reservation.timeout", 5), ("task.canceled", 5),
                    ("worker.activity.update", 10), ("task.updated", 5))
TRANSFER_MIX = (("reservation.created", 40), ("reservation.rejected", 20), ("reservation.accepted", 20),
                ("task-queue.entered", 20))


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _flex_task_attributes(rng: random.Random, transfer_id: str | None) -> str:
    """A Flex Conversations task's attributes (about 0.6 KB; a transfer's new task adds its ~3 KB context)."""
    customer = f"customer-{rng.randrange(10**6)}"
    attributes = {
        "channelType": "web", "direction": "inbound", "initiated_by": "customer", "customerName": "Chloe Martin",
        "from": customer, "customerAddress": customer, "conversationSid": sid("CH"),
        "flexInteractionSid": sid("KD"), "flexInteractionChannelSid": sid("UO"),
        "flexChannelInviteSid": sid("KG"),
        "customers": {"name": "Chloe Martin", "email": "chloe@example.com", "phone": "+33612345678"},
        "conversations": {"conversation_id": sid("WT"), "initiated_by": "customer", "media": [],
                          "external_contact": "+33612345678", "queue": "Support"},
        "routing": {"skills": ["support", "billing"], "language": "en"},
    }
    if transfer_id is not None:
        attributes |= {
            "transferTargetType": "worker", "transferTargetSid": sid("WK"), "transferQueueSid": sid("WQ"),
            "transferExcludedWorkers": [sid("WK")],
            "transfer": {"id": transfer_id, "mode": "cold", "from_worker_sid": sid("WK"),
                         "from_task_sid": sid("WT"), "attempt": 1, "notes": "Customer asks about a refund.",
                         "previous_transfer_id": None, "earlier_transfers": 0, "summary": None,
                         "context": {"messages": [{"role": "customer" if n % 2 else "agent",
                                                   "at": "2026-11-26T10:25:22Z",
                                                   "body": "Where is my parcel? It was due on Monday. " * 2}
                                                  for n in range(20)],
                                     "message_count": 20, "earlier_transfers": 0}},
        }
    return json.dumps(attributes)


def event_form(rng: random.Random, event_type: str, workspace_sid: str, transfer_id: str | None) -> dict[str, str]:
    """One TaskRouter event callback form, with the fields Twilio sends (Twilio's TaskRouter event reference)."""
    now = time.time()
    form = {
        "Sid": sid("EV"), "EventType": event_type, "AccountSid": "AC" + "0" * 32, "WorkspaceSid": workspace_sid,
        "WorkspaceName": "Flex Task Assignment", "EventDescription": f"{event_type} happened",
        "Timestamp": str(int(now)), "TimestampMs": str(int(now * 1000)),
    }
    if not event_type.startswith("worker."):
        form |= {"ResourceType": "task", "ResourceSid": sid("WT"), "TaskSid": sid("WT"),
                 "TaskAttributes": _flex_task_attributes(rng, transfer_id), "TaskAge": "12", "TaskPriority": "0",
                 "TaskAssignmentStatus": "reserved", "TaskChannelSid": sid("TC"), "TaskChannelUniqueName": "chat",
                 "TaskVersion": "3", "TaskQueueSid": sid("WQ"), "TaskQueueName": "Support",
                 "TaskQueueTargetExpression": 'routing.skills HAS "support"', "WorkflowSid": sid("WW"),
                 "WorkflowName": "Assign to Anyone"}
    if event_type.startswith(("reservation.", "worker.")):
        form |= {"WorkerSid": sid("WK"), "WorkerName": "alice", "WorkerActivitySid": sid("WA"),
                 "WorkerActivityName": "Available", "WorkerVersion": "7",
                 "WorkerAttributes": json.dumps({"contact_uri": "client:alice", "full_name": "Alice",
                                                 "email": "alice@example.com", "roles": ["agent"],
                                                 "routing": {"skills": ["support"], "levels": {"support": 3}}})}
    if event_type.startswith("reservation."):
        form |= {"ResourceType": "reservation", "ResourceSid": sid("WR"), "ReservationSid": sid("WR"),
                 "ReservationVersion": "1"}
    if event_type == "task.canceled":
        form["TaskCanceledReason"] = "customer left"
    return form


def _mixed(rng: random.Random, mix: tuple[tuple[str, int], ...]) -> Iterator[str]:
    types, weights = zip(*mix, strict=True)
    while True:
        yield from rng.choices(types, weights=weights, k=100)


def write_requests(path: Path, url: str, auth_token: str, workspace_sid: str, count: int, transfers: bool,
                   seed: int = 1, tasks: int = 40) -> None:
    """``count`` signed event forms for ``url``, one per line, each with its own event Sid.

    ``transfers``: every event is about a transfer's new task (its TaskAttributes carry a
    ``transfer`` id), so each one is delivered to that transfer's inbox; otherwise none is. The
    attributes are drawn from ``tasks`` tasks: a few dozen, as events come a few per task, or as
    many as there are events, so that each one is about a transfer of its own.
    """
    rng = random.Random(seed)
    validator = RequestValidator(auth_token)
    types = _mixed(rng, TRANSFER_MIX if transfers else NON_TRANSFER_MIX)
    tasks = [_flex_task_attributes(rng, new_transfer_id() if transfers else None) for _ in range(tasks)]
    with path.open("w") as out:
        for _ in range(count):
            form = event_form(rng, next(types), workspace_sid, None)
            if "TaskAttributes" in form:
                form["TaskAttributes"] = rng.choice(tasks)
            out.write(f"{validator.compute_signature(url, form)}\t{urlencode(form)}\n")


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; ``client_cpu_s`` is the CPU wrk itself used."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    wrapped: int
    client_cpu_s: float
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def to_dict(self) -> dict[str, float]:
        return {"rps": round(self.rps, 1), "requests": self.requests, "seconds": round(self.seconds, 2),
                "errors": self.errors, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
                "p999_ms": self.p999_ms, "wrapped": self.wrapped, "client_cpu_s": round(self.client_cpu_s, 2),
                "server_cpu_s": round(self.server_cpu_s, 2)}


def process_tree_cpu(root_pid: int) -> float:
    """User and system CPU seconds of a process and all its descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def run_wrk(url: str, requests_file: Path, seconds: float, connections: int, server_pid: int,
            rate: float | None = None) -> WrkResult:
    """One wrk run of ``seconds`` against ``url``; ``rate`` paces it (requests per second)."""
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file)}
    if rate:
        env["BENCH_RATE"] = str(rate)
    before_client = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_server = process_tree_cpu(server_pid)
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(LUA_SCRIPT), url],
        env=env, capture_output=True, text=True, timeout=seconds + 60)
    server_cpu = process_tree_cpu(server_pid) - before_server
    after_client = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(data[name] for name in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                         "timeouts"))
    client_cpu = (after_client.ru_utime + after_client.ru_stime) - (before_client.ru_utime + before_client.ru_stime)
    return WrkResult(data["requests"], data["duration_us"] / 1e6, errors, data["p50_us"] / 1000,
                     data["p90_us"] / 1000, data["p99_us"] / 1000, data["p999_us"] / 1000, data["wrapped"],
                     client_cpu, server_cpu)


def temporary_file(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="baton-bench-")) / name


def bare_command(web_command: str) -> str:
    """The Procfile's ``web`` command serving ``bench.bare`` instead of Baton: same gunicorn, same settings."""
    app_spec = '"app:create_app()"'
    if app_spec not in web_command:
        raise ValueError(f"the Procfile's web command no longer names {app_spec}: {web_command}")
    return web_command.replace(app_spec, '"bench.bare:create_app()"')


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ingest``: figures 1 and 2 alone, as ``make bench`` measures and prints them (its ingest
    phase, without the transfer stack): for a before/after of the web edge in a minute."""
    import argparse
    import shutil
    import sys

    from bench import run  # bench.run imports this module

    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=main.__doc__.splitlines()[0])
    parser.add_argument("--ingest-s", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--out", type=Path, help="also write the measurements as JSON here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which("wrk") is None:
        run.log("wrk is not installed: apt-get install -y wrk (make bench does it as root)")
        return 2
    interference = run.Interference()
    out = run.run_ingest(args.ingest_s)
    out["foreign_cpu_share"] = interference.share()
    rows: list[dict] = []
    run._ingest_rows(out, lambda number, name, value, target, met, **data: rows.append(
        {"figure": number, "name": name, "value": value, "target": target, "met": met, **data}))
    if args.out:
        args.out.write_text(json.dumps({"commit": run._commit(), "figures": rows, "ingest": out}, indent=2,
                                       default=str) + "\n")
    print(run.table(rows))
    print(f"\nCPU taken by other processes: {out['foreign_cpu_share']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
