"""Figures 1 and 2 in process: the web application's own time per signed TaskRouter event, and where it goes.

``wrk`` (``bench.ingest``) measures the whole server; this calls the application's WSGI callable
directly, with the same signed forms, so gunicorn, the sockets and the other processes on the
machine are left out and cProfile can say which functions the time goes to::

    python -m bench.ingest_profile                 # µs per event, not transfers and transfers
    python -m bench.ingest_profile --profile 25    # and the 25 functions that take the most time
    python -m bench.ingest_profile --publishes     # and µs per Celery publish (send_job) alone

Redis is ``REDIS_URL`` (a scratch database: the transfer events enqueue jobs no worker takes;
the database is emptied before and after). Metrics go to a temporary prometheus-client multiprocess
folder, as under gunicorn.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import tempfile
import time
from collections.abc import Callable
from urllib.parse import urlencode

import redis
from twilio.request_validator import RequestValidator

from baton.domain.transfers import new_transfer_id
from bench.ingest import NON_TRANSFER_MIX, TRANSFER_MIX, _flex_task_attributes, _mixed, event_form

PUBLIC_BASE_URL = "https://baton.example.com"
PATH = "/webhooks/taskrouter"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
WORKSPACE_SID = "WS" + "0" * 32

WsgiApp = Callable[[dict, Callable], object]


def signed_requests(count: int, transfers: bool, seed: int) -> list[tuple[str, bytes]]:
    """``count`` (signature, form body) pairs, as ``bench.ingest.write_requests`` makes them for wrk."""
    rng = random.Random(seed)
    validator = RequestValidator(AUTH_TOKEN)
    types = _mixed(rng, TRANSFER_MIX if transfers else NON_TRANSFER_MIX)
    tasks = [_flex_task_attributes(rng, new_transfer_id() if transfers else None) for _ in range(40)]
    out = []
    for _ in range(count):
        form = event_form(rng, next(types), WORKSPACE_SID, None)
        if "TaskAttributes" in form:
            form["TaskAttributes"] = rng.choice(tasks)
        out.append((validator.compute_signature(PUBLIC_BASE_URL + PATH, form), urlencode(form).encode()))
    return out


def environ(signature: str, body: bytes) -> dict:
    """The WSGI environ gunicorn gives the application for this POST."""
    return {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": PATH, "QUERY_STRING": "",
        "RAW_URI": PATH, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_TWILIO_SIGNATURE": signature, "HTTP_USER_AGENT": "TwilioProxy/1.1",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def serve(application: WsgiApp, requests: list[tuple[str, bytes]]) -> None:
    """Each request through the application, its answer read to the end; 204 or it stops."""
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    for signature, body in requests:
        answer = application(environ(signature, body), start_response)
        for _ in answer:  # type: ignore[attr-defined]
            pass
        close = getattr(answer, "close", None)
        if close is not None:
            close()
        if not statuses[-1].startswith("204"):
            raise RuntimeError(f"the application answered {statuses[-1]}")


def per_request_us(application: WsgiApp, requests: list[tuple[str, bytes]]) -> tuple[float, float]:
    """One pass over ``requests``: µs per request of wall-clock time and of this process's CPU (which leaves
    out the waits for Redis, and most of what other processes on the machine take from it)."""
    started, cpu = time.perf_counter(), time.process_time()
    serve(application, requests)
    return ((time.perf_counter() - started) / len(requests) * 1e6,
            (time.process_time() - cpu) / len(requests) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="signed events of each kind")
    parser.add_argument("--rounds", type=int, default=5, help="passes over new ones; the best counts")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="print the N functions with the most cumulative time, for each kind")
    parser.add_argument("--publishes", action="store_true", help="time send_job alone, as the webhook calls it")
    args = parser.parse_args()
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="baton-metrics-"))

    from app import create_app
    from baton.infrastructure.config import Config

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    config = Config(twilio_account_sid="AC" + "0" * 32, twilio_auth_token=AUTH_TOKEN,
                    twilio_workspace_sid=WORKSPACE_SID, transfer_workflow_sid="WW" + "0" * 32,
                    public_base_url=PUBLIC_BASE_URL, redis_url=redis_url,
                    metrics_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    scratch = redis.Redis.from_url(redis_url)
    scratch.flushdb()
    application = create_app(config)
    try:
        for name, transfers in (("not transfers", False), ("transfers", True)):
            warm_up = signed_requests(200, transfers, seed=0)
            serve(application, warm_up)
            # A transfer event is enqueued only the first time its Sid is seen: every pass gets new ones.
            passes = [signed_requests(args.events, transfers, seed) for seed in range(1, args.rounds + 1)]
            measured = [per_request_us(application, requests) for requests in passes]
            wall, cpu = min(wall for wall, _ in measured), min(cpu for _, cpu in measured)
            print(f"{name:<14} {wall:7.1f} µs per event, {cpu:7.1f} µs of CPU ({args.events} events, best of "
                  f"{args.rounds})")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.runcall(serve, application, signed_requests(args.events, transfers, seed=99))
                stats = pstats.Stats(profiler, stream=io.StringIO())
                stats.sort_stats("cumulative").print_stats(args.profile)
                print(stats.stream.getvalue())  # type: ignore[attr-defined]
        if args.publishes:
            from workers.celery_app import TASKROUTER_EVENT, send_job

            celery = application.extensions["baton.celery"]
            fields = {"EventType": "reservation.created", "Sid": "EV" + "1" * 32, "TaskSid": "WT" + "1" * 32}
            send_job(celery, TASKROUTER_EVENT, "tr_warm", fields)
            count = args.events
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                send_job(celery, TASKROUTER_EVENT, "tr_x", fields)
            print(f"send_job       {(time.perf_counter() - started) / count * 1e6:7.1f} µs per publish, "
                  f"{(time.process_time() - cpu) / count * 1e6:7.1f} µs of CPU")
    finally:
        scratch.flushdb()


if __name__ == "__main__":
    main()
