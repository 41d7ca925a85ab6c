"""Figure 10: how Baton grows past one dyno. One fixed batch of complete transfers, three ways.

1. one ``web`` and one ``worker`` process tree, Redis on loopback (the baseline);
2. two ``web`` and two ``worker`` process trees sharing that one Redis, as two dynos of each would: the
   second web and worker run the Procfile's own lines with the same environment (each web its own
   metrics folder, as a dyno has its own disk). Heroku's router spreads requests over the web dynos;
   here both gunicorn masters bind the one port with ``SO_REUSEPORT`` and the kernel spreads the
   connections (set for every configuration, so the three differ only in what they name);
3. one + one with Redis in a network namespace of its own, reached over a veth pair instead of
   loopback: every Redis command crosses a network device, as it does to a managed Redis.

Each transfer goes request, offer, rejection, re-route, second offer, accept (figure 3's kind), all
offered at a rate past what 1 + 1 completes on two cores, so that each configuration runs at its own
ceiling. On a machine of two CPUs two dynos cannot go faster than the two CPUs allow: what 2 + 2 shows
there is that the processes share the work correctly, every transfer finished once (no transfer
unfinished, no invite sent twice), and what the second set of processes costs.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections import Counter
from typing import Any

from baton.operator.devstack import Process, RedisServer, StackError, read_procfile, wait_for_redis
from bench.transfers import TransferBench, percentile, transfer_phase
from bench.world import World, connect, start_stack

# Figure 6's offered rate: past what 1 + 1 completes on two cores (figures 6 and 10: 12 to 19 a second).
DEFAULT_TRANSFERS = 240
DEFAULT_RATE = 40.0
PROCESS_READY_S = 30.0


class NamespacedRedis:
    """A private ``redis-server`` in a network namespace of its own, reached over a veth pair.

    The namespace, the pair and the server are removed by ``stop`` whatever ``start`` got to; ``stop``
    is safe to call after a failed ``start``.
    """

    def __init__(self) -> None:
        # Names and the subnet from this process's id: two benches at once would not collide.
        tag = os.getpid() % 10_000
        self.namespace = f"baton-bench-{tag}"
        self.host_end, self.redis_end = f"bb{tag}h", f"bb{tag}r"
        subnet = 16 + os.getpid() % 200
        self.host_address, self.redis_address = f"10.203.{subnet}.1", f"10.203.{subnet}.2"
        self.port = 6379
        self.popen: subprocess.Popen | None = None
        self._namespace_made = self._link_made = False

    @property
    def url(self) -> str:
        return f"redis://{self.redis_address}:{self.port}/0"

    def start(self) -> "NamespacedRedis":
        self._ip("netns", "add", self.namespace)
        self._namespace_made = True
        self._ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.redis_end)
        self._link_made = True
        self._ip("link", "set", self.redis_end, "netns", self.namespace)
        self._ip("addr", "add", f"{self.host_address}/30", "dev", self.host_end)
        self._ip("link", "set", self.host_end, "up")
        inside = ("ip", "netns", "exec", self.namespace)
        for command in (("ip", "addr", "add", f"{self.redis_address}/30", "dev", self.redis_end),
                        ("ip", "link", "set", self.redis_end, "up"), ("ip", "link", "set", "lo", "up")):
            _run(*inside, *command)
        # ``ip netns exec`` execs the command: this pid is redis-server's own, whose CPU the figure reads. Protected
        # mode (no password: loopback clients only) off, as the server is reachable only over this machine's veth pair.
        self.popen = subprocess.Popen(
            [*inside, "redis-server", "--bind", self.redis_address, "--port", str(self.port), "--protected-mode", "no",
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_redis(self.popen, self.redis_address, self.port,
                       f"redis-server did not start in namespace {self.namespace}")
        return self

    def stop(self) -> None:
        if self.popen is not None:
            self.popen.terminate()
            self.popen.wait(10)
            self.popen = None
        # Deleting one end of a veth pair deletes both; deleting the namespace would too, but not if the
        # end had not been moved into it yet.
        if self._link_made:
            subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)
            self._link_made = False
        if self._namespace_made:
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
            self._namespace_made = False

    def _ip(self, *arguments: str) -> None:
        _run("ip", *arguments)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise OSError(f"{' '.join(command)}: {result.stderr.strip() or f'exit status {result.returncode}'}")


def add_dyno(world: World, name: str) -> Process:
    """A second process tree of the Procfile's ``web`` or ``worker`` line beside the stack's first.

    Named ``web-2`` / ``worker-2`` among the stack's processes, so that the stack stops it and the
    bench counts its CPU.
    """
    kind = name.split("-")[0]
    env = world.stack.environment()
    if kind == "web":
        # A dyno's own disk: the web wipes its metrics folder at boot, which must not be the first web's.
        env["PROMETHEUS_MULTIPROC_DIR"] = str(world.stack.log_dir / f"metrics-{name}")
    process = world.stack.processes[name] = Process(name, read_procfile()[kind], env, world.stack.log_dir)
    # The web's /readyz cannot tell which of the two masters answered: its master's own log line says it listens.
    # Connections the kernel hands it before its workers have booted wait in its backlog, and the conversations
    # are opened before any transfer is asked for.
    ready = "Listening at" if kind == "web" else " ready."
    deadline = time.monotonic() + PROCESS_READY_S
    while ready not in process.log():
        if not process.alive() or time.monotonic() > deadline:
            raise StackError(f"{name} did not become ready; its log ({process.log_path}):\n{process.log_tail()}")
        time.sleep(0.1)
    return process


def duplicate_invites(world: World, channel_sids: set[str]) -> int:
    """Invites the simulator accepted beyond the first for each of these interaction channels."""
    invites: Counter = Counter()
    for entry in world.sim.requests.find("POST", "/Invites", product="flex-api"):
        channel_sid = entry.path.split("/Channels/")[1].split("/")[0]
        if channel_sid in channel_sids and entry.status is not None and entry.status < 300:
            invites[channel_sid] += 1
    return sum(count - 1 for count in invites.values() if count > 1)


def run_configuration(label: str, dynos: int, namespaced: bool, transfers: int, rate: float, reject_delay_s: float,
                      accept_delay_s: float, drain_s: float) -> dict[str, Any]:
    """One batch of ``transfers`` complete transfers at ``rate`` on ``dynos`` web and worker process trees."""
    redis_server: RedisServer | NamespacedRedis = NamespacedRedis() if namespaced else RedisServer()
    world: World | None = None
    try:
        redis_server.start()
        world = start_stack(redis_server.url, extra_env={"TWILIO_RATE_LIMITS": "off",
                                                         "GUNICORN_CMD_ARGS": "--reuse-port"})
        world.sim.faults.rate_limits.set({})  # as figures 3 to 7: past one account's limits
        for number in range(2, dynos + 1):
            add_dyno(world, f"web-{number}")
            add_dyno(world, f"worker-{number}")
        bench = TransferBench(world, redis_server)  # reads only .url and .popen.pid, which both servers have
        # Enough senders that none passes the agent API's rate limit (20 requests in 10 s).
        senders = max(60, math.ceil(rate * 1.5))
        world.add_agents(senders=senders, sender_capacity=math.ceil(transfers / senders) + 1, rejecters=4, pool=8,
                         reject_delay_s=reject_delay_s, accept_delay_s=accept_delay_s)
        held = world.open_conversations(transfers)
        connect(world)
        sent, info = bench.run(bench.pairs(held, world.rejecters), rate, drain_s)
        phase = transfer_phase(world, sent, info)
        cpu_ms = phase["cpu_ms_per_completed"]
        completed = phase["statuses"].get("completed", 0)
        return {"label": label, "dynos": dynos, "redis": "namespace hop" if namespaced else "loopback",
                "redis_url": redis_server.url, "offered": phase["offered"], "offered_rate": phase["offered_rate"],
                "statuses": phase["statuses"], "refused": phase["refused"], "completed": completed,
                "unfinished": phase["offered"] - completed,
                "duplicate_invites": duplicate_invites(world, {s.held.channel_sid for s in sent}),
                "completed_per_s": phase["completed_per_s"],
                "reaction_p50_ms": percentile(phase["reaction_ms"], 50),
                "reaction_p99_ms": percentile(phase["reaction_ms"], 99),
                "baton_cpu_ms_per_completed": round(sum(ms for name, ms in cpu_ms.items()
                                                        if name.split("-")[0] in ("web", "worker")), 1)
                if cpu_ms else None,
                "cpu_ms_per_completed": cpu_ms, "cpu_s": phase["cpu_s"], "logs": str(world.stack.log_dir)}
    finally:
        if world is not None:
            # Webhooks still queued would each fail against stopped processes.
            world.sim.dispatcher.drop = lambda url, params: True
            world.stack.stop()
        redis_server.stop()


CONFIGURATIONS = (("10", "1 web + 1 worker, Redis on loopback", 1, False),
                  ("10b", "2 web + 2 worker, one Redis on loopback", 2, False),
                  ("10c", "1 web + 1 worker, Redis across a netns hop", 1, True))


def run(transfers: int, rate: float, reject_delay_s: float, accept_delay_s: float, drain_s: float,
        log: Any) -> dict[str, Any]:
    """The three configurations of figure 10 in turn, the baseline first."""
    out: dict[str, Any] = {"transfers": transfers, "rate": rate, "cpus": os.cpu_count(), "runs": {}}
    for number, label, dynos, namespaced in CONFIGURATIONS:
        log(f"figure {number}: {label}: {transfers} transfers offered at {rate:g}/s, each rejected then accepted")
        started = time.monotonic()
        try:
            result = run_configuration(label, dynos, namespaced, transfers, rate, reject_delay_s, accept_delay_s,
                                       drain_s)
        except OSError as exc:
            if not namespaced:
                raise
            # Creating a namespace needs CAP_SYS_ADMIN (root, or a container allowed it): without it the row says why.
            result = {"label": label, "skipped": f"no network namespace: {exc}"}
            log(f"  skipped: {result['skipped']}")
        else:
            log(f"  {result['statuses']}; {result['completed_per_s']}/s completed; reaction p50 "
                f"{result['reaction_p50_ms']} ms, p99 {result['reaction_p99_ms']} ms; Baton CPU "
                f"{result['baton_cpu_ms_per_completed']} ms per transfer; duplicate invites "
                f"{result['duplicate_invites']}; run took {time.monotonic() - started:.0f} s")
        out["runs"][number] = result
    return out


def scaleout_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 10's rows: each configuration, and its ratios to the 1 + 1 loopback baseline."""
    baseline = out["runs"].get("10", {})
    rows = []
    for number, result in out["runs"].items():
        name = f"{result['label']}, {out['transfers']} transfers offered at {out['rate']:g}/s"
        if "skipped" in result:
            rows.append({"figure": number, "name": name, "value": f"skipped: {result['skipped']}",
                         "target": "reported", "met": None})
            continue
        value = (f"{result['completed_per_s']:.1f}/s; reaction p50 {_ms(result['reaction_p50_ms'])}, p99 "
                 f"{_ms(result['reaction_p99_ms'])} ms; Baton CPU {result['baton_cpu_ms_per_completed']} ms/transfer; "
                 f"{result['unfinished']} unfinished, {result['duplicate_invites']} duplicate invites")
        if number != "10" and "completed_per_s" in baseline:
            value += (f"; x{_ratio(result['completed_per_s'], baseline['completed_per_s'])} rate, "
                      f"x{_ratio(result['baton_cpu_ms_per_completed'], baseline['baton_cpu_ms_per_completed'])} CPU "
                      "vs 10")
        rows.append({"figure": number, "name": name, "value": value, "target": "reported", "met": None,
                     **{key: result[key] for key in ("completed_per_s", "reaction_p50_ms", "reaction_p99_ms",
                                                     "baton_cpu_ms_per_completed", "unfinished",
                                                     "duplicate_invites")}})
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None, baseline: float | None) -> str:
    return "-" if not value or not baseline else f"{value / baseline:.2f}"


NOTE = ("On {cpus} CPUs, 2 web + 2 worker cannot complete transfers faster than the CPUs allow: two dynos on one "
        "machine share its cores. What figure 10b shows is that the processes share the work correctly (no transfer "
        "left unfinished, no invite sent twice) and what the second set of processes costs; more dynos add "
        "throughput only where they add cores.")
