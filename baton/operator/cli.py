"""The ``baton`` command: ``baton demo``, ``baton sim``, ``baton setup``, ``baton doctor`` and ``baton live-check``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import requests

from baton.infrastructure.config import DEFAULT_REDIS_URL
from baton.operator.devstack import DevStack, StackError
from simulator import Simulator
from simulator.profiles import PROFILES
from simulator.scenario import EVENT_PATHS, build_default_scenario, connect_baton


def _interruption() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM from now on (instead of KeyboardInterrupt wherever the code is)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def play_transfer(stack: DevStack, timeout: float = 60.0) -> dict:
    """Alice transfers her chat to Bob, who rejects; Carol accepts. Prints the timeline as it happens."""
    scenario = stack.scenario
    headers = {"Authorization": f"Bearer {scenario.tokens['alice']}"}
    print(f"\nAlice transfers her chat ({scenario.conversation.task_sid}) to Bob, who rejects every offer; "
          "Carol is available.", flush=True)
    response = requests.post(f"{stack.web_url}/v1/transfers", headers=headers, timeout=10, json={
        "task_sid": scenario.conversation.task_sid, "to": scenario.agents["bob"], "mode": "cold",
        "notes": "Customer asks about order 4417, which never arrived."})
    response.raise_for_status()
    transfer = response.json()
    names = {sid: name for name, sid in scenario.agents.items()}
    shown, deadline = 0, time.monotonic() + timeout
    while True:
        transfer = requests.get(f"{stack.web_url}/v1/transfers/{transfer['id']}", headers=headers, timeout=10).json()
        for entry in transfer["timeline"][shown:]:
            who = names.get(entry.get("worker_sid"), "")
            print(f"  {entry['at'][11:23]}  {entry['state']:<9}  {entry['event']}  {who}".rstrip(), flush=True)
        shown = len(transfer["timeline"])
        if transfer["status"] in ("completed", "failed", "canceled") or time.monotonic() > deadline:
            print(f"Transfer {transfer['id']}: {transfer['status']}", flush=True)
            return transfer
        time.sleep(0.1)


def run_demo(args: argparse.Namespace) -> int:
    """Start web, worker and the simulator with its scripted agents, show where they listen."""
    stack = DevStack(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL), time_scale=args.time_scale,
                     web_port=args.port, events=args.events)
    print("Starting the Twilio simulator, Baton's web and worker processes…", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        ready = requests.get(f"{stack.web_url}/readyz", timeout=5)
        print(f"Baton web      {stack.web_url}  (GET /readyz -> {ready.status_code})")
        print(f"Twilio sim     {stack.simulator.url}")
        print(f"Logs           {stack.log_dir}")
        pids = ", ".join(f"{name} pid {process.popen.pid}" for name, process in stack.processes.items())
        print(f"Processes      {pids}")
        for line in stack.scenario.describe():
            print(line)
        transfer = play_transfer(stack)
        if args.once:
            return 0 if transfer["status"] == "completed" else 1
        stop = _interruption()
        print("Serving; press Ctrl-C to stop.", flush=True)
        stop.wait()
        return 0
    finally:
        print("Stopping…", flush=True)
        stack.stop()


def run_sim(args: argparse.Namespace) -> int:
    """Serve the simulator with the default scenario until Ctrl-C."""
    with Simulator(time_scale=args.time_scale, profile=args.profile) as sim:
        sim.serve(port=args.port)
        scenario = build_default_scenario(sim)
        connect_baton(sim, scenario, args.baton_url, args.events)
        print(f"Twilio simulator on {sim.url}", flush=True)
        for name, value in scenario.baton_environment(sim.url, public_base_url=args.baton_url).items():
            print(f"{name}={value}")
        for line in scenario.describe():
            print(line)
        print(f"Profile {args.profile}: " + ", ".join(f"{k}={v}" for k, v in sim.profile.switches().items()),
              flush=True)
        _interruption().wait()
    return 0


def run_setup(args: argparse.Namespace) -> int:
    """Point the configured Twilio account at this deployment (``baton.operator.setup``); 2 when it refuses."""
    from baton.infrastructure.config import ConfigError, load_config
    from baton.operator import setup

    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return setup.run_setup(config, dry_run=args.dry_run, force=args.force, events=args.events)


def run_doctor(args: argparse.Namespace) -> int:
    """Check this deployment end to end (``baton.operator.doctor``); non-zero when any check fails."""
    from baton.infrastructure.config import ConfigError, load_config
    from baton.operator import doctor

    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return doctor.run_doctor(config)


def run_live_check(args: argparse.Namespace) -> int:
    """Prove Baton on the configured account (``baton.operator.livecheck``); 2 when it refuses to start."""
    from baton.infrastructure.config import ConfigError, load_config
    from baton.operator import livecheck

    if not args.confirmed:
        print(livecheck.GUARD_REFUSAL, file=sys.stderr)
        return livecheck.EXIT_REFUSED
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return livecheck.run_live_check(config, args.rejecting_agent, args.accepting_agent,
                                    probe_timeout_s=args.probe_timeout_s)


def _worker_sid(value: str) -> str:
    from baton.infrastructure.config import sid_parser

    try:
        return sid_parser("WK")(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None


def _seconds(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds, 1 or more")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run Baton against the built-in Twilio simulator")
    demo.add_argument("--port", type=int, default=None, help="web port (default: a free one)")
    demo.add_argument("--time-scale", type=float, default=0.05,
                      help="factor applied to simulated durations (0.05: a 30 s offer timeout takes 1.5 s)")
    demo.add_argument("--once", action="store_true", help="stop after the demo transfer, not serve until Ctrl-C")
    demo.add_argument("--events", choices=EVENT_PATHS, default="callback",
                      help="how TaskRouter's events reach Baton: the workspace's callback, an Event Streams sink, "
                           "or both")
    demo.set_defaults(run=run_demo)

    sim = commands.add_parser("sim", help="serve the Twilio simulator with the default scenario")
    sim.add_argument("--port", type=int, default=8099)
    sim.add_argument("--time-scale", type=float, default=1.0)
    sim.add_argument("--profile", choices=tuple(PROFILES), default="documented",
                     help="how to play what Twilio's docs leave ambiguous (docs/twilio-behaviour.md)")
    sim.add_argument("--baton-url", default="http://127.0.0.1:5000",
                     help="where the simulator delivers Baton's webhooks")
    sim.add_argument("--events", choices=EVENT_PATHS, default="callback",
                     help="how TaskRouter's events reach Baton: the workspace's callback, an Event Streams sink "
                          "(with the credentials Baton derives for --baton-url), or both")
    sim.set_defaults(run=run_sim)

    setup = commands.add_parser("setup", help="write Baton's transfer workflow, event callback (or Event Streams "
                                              "sink) and Conversations webhook to the configured Twilio account")
    setup.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    setup.add_argument("--force", action="store_true",
                       help="replace another application's event callback URL (with --events callback) or "
                            "Conversations webhook")
    setup.add_argument("--events", choices=("auto", "streams", "callback"), default="auto",
                       help="how TaskRouter's events reach Baton: an Event Streams sink (streams, never touching the "
                            "workspace's callback), the workspace's EventCallbackUrl (callback), or auto (the "
                            "default): streams when Baton has a sink or another application holds the callback, "
                            "else callback")
    setup.set_defaults(run=run_setup)

    doctor = commands.add_parser("doctor", help="check credentials, sids, workflow, callbacks, Redis and workers")
    doctor.set_defaults(run=run_doctor)

    live = commands.add_parser("live-check", help="prove Baton on the configured account: play one transfer between "
                                                  "two test agents, report what Twilio did, delete what it created")
    live.add_argument("--rejecting-agent", required=True, type=_worker_sid, metavar="WK…",
                      help="the test agent whose offer the check rejects (available, with room on chat)")
    live.add_argument("--accepting-agent", required=True, type=_worker_sid, metavar="WK…",
                      help="the test agent whose offer the check accepts (available, with room on chat)")
    live.add_argument("--probe-timeout-s", type=_seconds, default=10,
                      help="the timeout of the probe step that ends a filter (default 10)")
    live.add_argument("--i-understand-this-creates-test-tasks", dest="confirmed", action="store_true",
                      help="required: the check creates a temporary queue, workflow, conversation and tasks")
    live.set_defaults(run=run_live_check)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
