"""Figure 9: a burst of transfers under Twilio's own limits (issue 17, item 6).

The simulator plays Twilio's documented request limits (``DOCUMENTED_RATE_LIMITS``: 20/s on each endpoint of the
Interactions API, answered with 429 and code 20429 above it). ``transfers`` transfers to available agents are
requested at once; each needs one invite, so the burst cannot end before ``transfers / 20`` seconds: its floor.
The figure runs twice on fresh stacks: with Baton's pacing at its defaults (the figure), and with
``TWILIO_RATE_LIMITS=off``, Baton leaving it to Twilio's 429s and its retries (the baseline).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from baton.infrastructure.store import Store, connect_redis
from baton.operator.devstack import RedisServer
from bench.transfers import completed_at, path_shape, post_transfers, wait_finished
from bench.world import World, connect, start_stack
from simulator.faults import DOCUMENTED_RATE_LIMITS

INVITE_LIMIT_PER_S = DOCUMENTED_RATE_LIMITS["CreateInteractionChannelInvite"]
# Under the agent API's own limit of 20 transfer requests per agent in 10 s.
TRANSFERS_PER_SENDER = 10
# "At once": every request is due when the load generator starts, sent by the first free of its threads.
AT_ONCE_PER_S = 1_000_000.0
POSTING_THREADS = 32
# How long both runs take on two busy cores (about 35 s), with room: kept back from figure 7's time budget.
EXPECTED_S = 50
# Worker processes of both runs: as two worker dynos of the Procfile's default concurrency would have, enough for
# Baton unpaced to send more than Twilio's 20 invites a second on two cores.
WORKER_CONCURRENCY = 4


def run_burst(transfers: int, paced: bool, accept_delay_s: float, drain_s: float) -> dict[str, Any]:
    """``transfers`` transfers requested at once against the simulator's Twilio limits, Baton paced or not."""
    redis_server = RedisServer().start()
    environment = {"CELERY_CONCURRENCY": str(WORKER_CONCURRENCY)}
    world = start_stack(redis_server.url, extra_env=environment if paced else {**environment,
                                                                              "TWILIO_RATE_LIMITS": "off"})
    try:
        senders = math.ceil(transfers / TRANSFERS_PER_SENDER)
        world.add_agents(senders=senders, sender_capacity=TRANSFERS_PER_SENDER + 1, rejecters=0, pool=8,
                         reject_delay_s=0, accept_delay_s=accept_delay_s)
        conversations = world.open_conversations(transfers)
        connect(world)
        pairs = [(held, world.pool[n % len(world.pool)]) for n, held in enumerate(conversations)]
        sent = post_transfers(world, pairs, AT_ONCE_PER_S, threads=POSTING_THREADS)
        finals = wait_finished(Store(connect_redis(redis_server.url)), [s.transfer_id for s in sent if s.transfer_id],
                               drain_s)
        first_request = min(s.sent for s in sent if s.sent)
        done = [at for t in finals.values() if (at := completed_at(t)) is not None]
        return {"paced": paced, "requested": transfers, "accepted_requests": sum(s.status == 202 for s in sent),
                "statuses": dict(Counter(t.status for t in finals.values())),
                "requests_sent_within_s": round(max(s.sent for s in sent) - first_request, 3),
                "duration_s": round(max(done) - first_request, 2) if done else None,
                **_twilio_side(world, first_request), "logs": str(world.stack.log_dir)}
    finally:
        world.sim.dispatcher.drop = lambda url, params: True
        world.stack.stop()
        redis_server.stop()


def _twilio_side(world: World, since: float) -> dict[str, Any]:
    """What the simulator saw from ``since``: the invites it applied, its 429s by endpoint, and the most invites
    that arrived within any one second."""
    seen = [entry for entry in world.sim.requests.find() if entry.received is not None and entry.received >= since]
    invites = sorted(entry.received for entry in seen if entry.method == "POST" and entry.path.endswith("/Invites")
                     and entry.status is not None and entry.status < 300)
    limited = Counter(f"{entry.method} {path_shape(entry.path)}" for entry in seen if entry.status == 429)
    peak = max((sum(1 for later in invites[n:] if later - at < 1.0) for n, at in enumerate(invites)), default=0)
    per_second = Counter(int(at - since) for at in invites)
    return {"invites": len(invites), "invites_span_s": round(invites[-1] - since, 2) if invites else None,
            "invites_by_second": [per_second[n] for n in range(max(per_second, default=-1) + 1)],
            "peak_invites_in_1s": peak, "twilio_429s": sum(limited.values()), "twilio_429s_by_endpoint": dict(limited),
            "floor_s": round(len(invites) / INVITE_LIMIT_PER_S, 2)}


def burst_rows(burst: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 9 (paced) and 9b (the baseline without pacing) as rows of the bench's table."""
    rows = []
    for number, label, out in (("9", "Baton paced", burst.get("paced")), ("9b", "pacing off", burst.get("unpaced"))):
        if out is None:
            continue
        completed = out["statuses"].get("completed", 0)
        duration = "-" if out["duration_s"] is None else f"{out['duration_s']:.1f} s"
        rows.append({
            "figure": number, "name": f"{out['requested']} transfers requested at once, Twilio's limits, {label}",
            "value": f"{completed}/{out['requested']} completed in {duration} (floor {out['floor_s']:.1f} s: "
                     f"{out['invites']} invites at {INVITE_LIMIT_PER_S:g}/s); {out['twilio_429s']} x 429 from "
                     f"Twilio; peak {out['peak_invites_in_1s']} invites in 1 s",
            "target": "all complete, no 429" if out["paced"] else "reported",
            "met": completed == out["requested"] and out["twilio_429s"] == 0 if out["paced"] else None,
            "completed": completed, "duration_s": out["duration_s"], "floor_s": out["floor_s"],
            "twilio_429s": out["twilio_429s"]})
    return rows


def run(transfers: int, accept_delay_s: float, drain_s: float, log: Any) -> dict[str, Any]:
    """Both runs of figure 9, the paced one first."""
    out: dict[str, Any] = {}
    for key, paced in (("paced", True), ("unpaced", False)):
        log(f"figure 9: {transfers} transfers requested at once under Twilio's limits, Baton's pacing "
            f"{'on (its defaults)' if paced else 'off'}")
        started = time.monotonic()
        out[key] = run_burst(transfers, paced, accept_delay_s, drain_s)
        log(f"  {out[key]['statuses']}; done {out[key]['duration_s']} s after the first request (floor "
            f"{out[key]['floor_s']} s); 429s {out[key]['twilio_429s_by_endpoint'] or 0}; peak "
            f"{out[key]['peak_invites_in_1s']} invites in 1 s; run took {time.monotonic() - started:.0f} s")
    return out
