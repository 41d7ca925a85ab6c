"""The Flex UI side of the transfer figures, in a process of its own: agents asking for transfers.

``python -m bench.loadgen warm PLAN`` warms Baton's token cache from a JSON plan ``{"url", "rate",
"threads", "transfers": [{"token", "task_sid", "to"}, …]}``: one read per token, as an agent's Flex
UI polls before it transfers anything. ``python -m bench.loadgen post --results RESULTS PLAN`` then
posts ``POST /v1/transfers`` open-loop: the n-th request is due at ``start + n / rate``, whatever
became of the earlier ones, and is sent by the first free thread. ``RESULTS`` gets one JSON object
per transfer: when it was due, sent and answered (epoch seconds), the status and the transfer id.
Two commands, so that the harness measures the transfers' costs from after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter


def _session(threads: int) -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))
    return session


def warm(url: str, transfers: list[dict], threads: int) -> None:
    """One authenticated read per token, so that IAM's answer is cached before the clock starts."""
    first_task = {}
    for transfer in transfers:
        first_task.setdefault(transfer["token"], transfer["task_sid"])
    session = _session(threads)
    work: queue.Queue = queue.Queue()
    for item in first_task.items():
        work.put(item)

    def run() -> None:
        while True:
            try:
                token, task_sid = work.get_nowait()
            except queue.Empty:
                return
            response = session.get(f"{url}/v1/transfers", params={"task_sid": task_sid},
                                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
            response.raise_for_status()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def post_all(url: str, transfers: list[dict], rate: float, threads: int) -> list[dict]:
    """Post every transfer at ``rate`` per second; returns what happened to each, in plan order."""
    session = _session(threads)
    results: list[dict | None] = [None] * len(transfers)
    work: queue.Queue = queue.Queue()
    start = time.time() + 0.2

    def run() -> None:
        while (item := work.get()) is not None:
            n, due = item
            transfer = transfers[n]
            sent = time.time()
            try:
                response = session.post(f"{url}/v1/transfers", timeout=30, json={
                    "task_sid": transfer["task_sid"], "to": transfer["to"]}, headers={
                    "Authorization": f"Bearer {transfer['token']}", "Idempotency-Key": transfer["task_sid"]})
                status, body = response.status_code, response.json() if response.content else {}
            except requests.RequestException as exc:
                status, body = None, {"error": type(exc).__name__}
            results[n] = {"due": due, "sent": sent, "answered": time.time(), "status": status,
                          "id": body.get("id"), "error": None if status == 202 else body}

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for n in range(len(transfers)):
        due = start + n / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        work.put((n, due))
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join()
    return [result or {} for result in results]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("warm", "post"))
    parser.add_argument("plan", type=Path)
    parser.add_argument("--results", type=Path, help="where post writes what became of each request")
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    if args.step == "warm":
        warm(plan["url"], plan["transfers"], plan["threads"])
    else:
        results = post_all(plan["url"], plan["transfers"], plan["rate"], plan["threads"])
        args.results.write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
