"""``make demo``'s command end to end: real gunicorn, Celery worker and simulator, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_serves_until_ctrl_c_and_then_stops_everything(redis_url):
    """The demo brings web, worker and simulator up, plays a transfer to completion, and Ctrl-C stops everything."""
    demo = subprocess.Popen([sys.executable, "-m", "baton.operator.cli", "demo"],
                            env={**os.environ, "REDIS_URL": redis_url},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + 60
    for line in demo.stdout:
        output.append(line)
        if "Serving" in line or time.monotonic() > deadline:
            break
    text = "".join(output)
    assert "GET /readyz -> 200" in text, text
    assert re.search(r"Transfer tr_[0-9a-f]{32}: completed", text), text
    assert "offer rejected" in text
    pids = [int(pid) for pid in re.findall(r"(?:web|worker|beat) pid (\d+)", text)]
    assert len(pids) == 3 and all(process_group_alive(pid) for pid in pids)

    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=40) == 0, demo.stdout.read()
    assert not any(process_group_alive(pid) for pid in pids)
