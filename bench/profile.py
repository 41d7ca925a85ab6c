"""``python -m bench.profile``: where a complete transfer's CPU goes, for work on the hot paths.

One stack as ``make bench`` starts it, one batch of complete transfers (request, offer, reject,
re-route, second offer, accept, close) at a given rate, then per completed transfer: CPU of each
process, Redis commands (LPUSH: Celery tasks enqueued), Twilio requests, and the reaction times.
With ``--py-spy FOLDER`` the web and worker process trees are sampled meanwhile, on CPU only, into
collapsed stacks (flamegraph.pl's input); py-spy must be installed (``pip install py-spy``) and
sampling another process needs root or ptrace rights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from baton.operator.devstack import RedisServer
from bench.transfers import TransferBench, path_shape, percentile, transfer_phase
from bench.world import World, connect, start_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=120)
    parser.add_argument("--rate", type=float, default=10.0, help="transfers asked for per second")
    parser.add_argument("--accept", action="store_true", help="transfers accepted by the first agent offered")
    parser.add_argument("--py-spy", type=Path, metavar="FOLDER", help="sample web and worker into FOLDER")
    parser.add_argument("--drain-s", type=float, default=60.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    redis_server = RedisServer().start()
    world = start_stack(redis_server.url)
    spies: list[subprocess.Popen] = []
    try:
        bench = TransferBench(world, redis_server)
        world.add_agents(senders=60, sender_capacity=args.transfers // 60 + 2, rejecters=4, pool=8,
                         reject_delay_s=1.0, accept_delay_s=0.5)
        held = world.open_conversations(args.transfers)
        connect(world)
        requests_before = len(world.sim.requests.find())
        if args.py_spy:
            spies = _start_py_spy(world, args.py_spy, seconds=args.transfers / args.rate + 5)
        targets = world.pool if args.accept else world.rejecters
        sent, info = bench.run(bench.pairs(held, targets), args.rate, args.drain_s)
        phase = transfer_phase(world, sent, info)
        first = min(s.sent for s in sent if s.sent)  # after the load generator's warm-up of the token cache
        made = [e for e in world.sim.requests.find()[requests_before:] if e.received and e.received >= first]
        twilio = Counter(f"{e.method} {e.product} {path_shape(e.path)}" for e in made)
        completed = max(phase["statuses"].get("completed", 0), 1)
        reaction = phase["reaction_ms"]
        print(json.dumps({
            "statuses": phase["statuses"], "completed_per_s": phase["completed_per_s"],
            "reaction_ms": {"p50": percentile(reaction, 50), "p90": percentile(reaction, 90),
                            "p99": percentile(reaction, 99)},
            "cpu_ms_per_completed": phase["cpu_ms_per_completed"],
            "redis_calls_per_completed": phase["redis_calls_per_completed"],
            "twilio_requests_per_completed": {k: round(v / completed, 1) for k, v in twilio.most_common()},
            "refused_reoffers_per_transfer": phase["refused_reoffers_per_transfer"],
            "cost_per_completed": phase["cost_per_completed"],
            "rejection_to_next_offer_ms": {"p50": percentile(phase["rejection_to_next_offer_ms"], 50),
                                           "p99": percentile(phase["rejection_to_next_offer_ms"], 99)},
            "rejection_to_next_offer_twilio_requests": dict(Counter(phase["rejection_to_next_offer_twilio_requests"])),
        }, indent=1))
        return 0
    finally:
        for spy in spies:
            spy.wait(60)
        world.sim.dispatcher.drop = lambda url, params: True
        world.stack.stop()
        redis_server.stop()


def _start_py_spy(world: World, folder: Path, seconds: float) -> list[subprocess.Popen]:
    """py-spy on the web's and the worker's process trees for ``seconds``, writing FOLDER/{web,worker}.txt."""
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--subprocesses", "--format", "raw", "--duration", str(round(seconds)),
               "--rate", "200"]
    return [subprocess.Popen([*command, "--output", str(folder / f"{name}.txt"),
                              "--pid", str(world.stack.processes[name].popen.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name in ("web", "worker")]


if __name__ == "__main__":
    sys.exit(main())
