"""Redis going away and coming back, and Heroku's SIGTERM: nothing acknowledged is lost.

Each test runs its own stack: these take processes and Redis down on purpose.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from support.prerequisites import require
from support.stack import ADMIN_TOKEN, TIME_SCALE, Baton
from test_transfer_lifecycle import invites_of

from baton.operator.devstack import DevStack, Process, RedisServer
from simulator.scenario import open_conversation

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def redis_server_installed():
    """These tests stop and start Redis themselves: they need the redis-server binary."""
    require(shutil.which("redis-server") is not None,
            "no redis-server binary to stop and start: apt-get install -y redis-server")


@pytest.fixture
def own_stack():
    """A stack on its own persistent Redis (appendfsync always), without beat: only queued work moves transfers."""
    server = RedisServer(persistent=True).start()
    stacks = []

    def start(**env) -> tuple[DevStack, RedisServer]:
        stack = DevStack(server.url, time_scale=TIME_SCALE,
                         extra_env={"ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": "e2e-secret-key-0123456789", **env})
        stacks.append(stack.start(processes=("web", "worker")))
        return stack, server

    yield start
    for stack in stacks:
        stack.stop()
    server.stop()


def signed_event(stack: DevStack, fields: dict[str, str]) -> requests.Response:
    url = f"{stack.web_url}/webhooks/taskrouter"
    return requests.post(url, data=fields, headers={"X-Twilio-Signature": stack.simulator.dispatcher.signature(
        url, fields)}, timeout=10)


def freeze(process: Process) -> None:
    """SIGSTOP a process's group; return once its main process is stopped."""
    process.signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.01)


def wait_for_outage_seen(worker: Process, count: int) -> None:
    """Until the worker has logged losing its broker connection ``count`` times."""
    deadline = time.monotonic() + 10
    while worker.log().count("Connection to broker lost") < count:
        assert time.monotonic() < deadline, "the worker never saw the outage"
        time.sleep(0.05)


def held_for_redelivery(broker: redis.Redis) -> list[list]:
    """The task arguments of the messages taken but not acknowledged, which kombu keeps in Redis (its
    ``unacked`` hash) and puts back in the queue once the visibility timeout has passed."""
    messages = [json.loads(raw)[0] for raw in broker.hvals("unacked")]
    return [json.loads(base64.b64decode(message["body"]))[0] for message in messages]


def test_redis_outage_answers_503_loses_nothing_and_recovers_without_restart(own_stack):
    """Redis down: webhooks and API 503, readyz 503, healthz 200; back: the worker that stayed up all along
    (never restarted) runs the event queued before the outage, then survives an outage in the middle of a
    task and takes a transfer made after it."""
    # The shortest lock: the interrupted task may leave its transfer's lock behind, and that transfer's events
    # wait it out, holding the worker's two processes.
    stack, redis_server = own_stack(LOCK_TIMEOUT_S="11")
    sim, scenario, baton = stack.simulator, stack.scenario, Baton(stack)
    broker = redis.Redis.from_url(redis_server.url)
    worker = stack.processes["worker"]
    sim.agents.set_policy(scenario.agents["carol"], [{"action": "accept", "delay": 20}])
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = baton.transfer("alice", conversation.task_sid, scenario.agents["carol"]).json()["id"]
    baton.wait(transfer_id, states=("offered",))

    # 1. The worker is frozen while Carol accepts, so the acceptance (answered 204) waits in Redis through the
    # outage. Its pending BRPOP is answered first (as a timeout), so no message can go to the frozen socket.
    freeze(worker)
    for client in broker.client_list():
        if "b" in client["flags"]:
            broker.client_unblock(client["id"])
    deadline = time.monotonic() + 10
    while not [d for d in sim.dispatcher.deliveries if d.params.get("EventType") == "reservation.accepted"
               and d.params.get("TaskSid") == baton.get(transfer_id)["new_task_sid"] and d.status == 204]:
        assert time.monotonic() < deadline, "the acceptance never reached Baton"
        time.sleep(0.05)
    assert broker.llen("celery") >= 1, "the acceptance is not waiting in the queue"
    redis_server.stop()
    # The worker runs again while Redis is away: it loses its connection and keeps trying.
    worker.signal(signal.SIGCONT)

    event = {"EventType": "reservation.created", "Sid": "EV" + "1" * 32, "TaskAttributes": '{"transfer": {"id": "x"}}'}
    assert signed_event(stack, event).status_code == 503
    refused = baton.transfer("alice", conversation.task_sid, scenario.agents["carol"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "unavailable")
    assert requests.get(f"{stack.web_url}/readyz", timeout=10).status_code == 503
    assert requests.get(f"{stack.web_url}/healthz", timeout=10).status_code == 200
    wait_for_outage_seen(worker, 1)

    redis_server.start()
    # The same worker, kept up through the outage, takes the queued acceptance.
    assert baton.wait(transfer_id)["status"] == "completed"

    # 2. Redis goes away while the worker runs a task (its message taken, not yet acknowledged). Celery and
    # kombu alone then stopped the worker ("Unrecoverable error: AttributeError"; see workers/consumer.py).
    held_invite = sim.faults.add(method="POST", path="/Invites", kind="hold", when="before", times=1)
    interrupted = open_conversation(sim, scenario, "alice")
    interrupted_id = baton.transfer("alice", interrupted.task_sid, scenario.agents["carol"]).json()["id"]
    assert held_invite.wait(count=1, timeout=10), "the worker never reached the invite"
    redis_server.stop()
    wait_for_outage_seen(worker, 2)
    redis_server.start()
    held_invite.release()

    # The same worker takes new work; the web, also kept up, takes requests again.
    other = open_conversation(sim, scenario, "alice")
    deadline = time.monotonic() + 20
    while (response := baton.transfer("alice", other.task_sid, scenario.agents["carol"])).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.status_code == 202
    assert baton.wait(response.json()["id"], timeout=30)["status"] == "completed"
    assert requests.get(f"{stack.web_url}/readyz", timeout=10).status_code == 200
    assert stack.processes["worker"] is worker and worker.alive(), "the worker was restarted"
    # Nothing of the interrupted task is lost: it went on, or its message waits in Redis, to run again after
    # the visibility timeout (the reconciliation, not running here, catches its transfer up before that).
    assert (baton.get(interrupted_id)["status"] == "completed"
            or [interrupted_id] in held_for_redelivery(broker)), baton.get(interrupted_id)["timeline"]


def test_sigterm_lets_running_work_finish(own_stack):
    """SIGTERM to the worker mid-invite and to the web mid-request: both finish what they hold, nothing is lost."""
    stack, _ = own_stack(WORKER_SOFT_SHUTDOWN_S="5")
    sim, scenario, baton = stack.simulator, stack.scenario, Baton(stack)

    conversation = open_conversation(sim, scenario, "alice")
    slow_invite = sim.faults.add(method="POST", path="/Invites", kind="delay", delay_s=2, when="before", times=1)
    transfer_id = baton.transfer("alice", conversation.task_sid, scenario.agents["carol"]).json()["id"]
    assert slow_invite.wait(count=1, timeout=10)
    stack.processes.pop("worker").stop()  # SIGTERM, as Heroku sends it, and wait for the exit
    # The invite in flight completed and was recorded before the worker left.
    assert baton.get(transfer_id)["new_task_sid"] is not None

    other = open_conversation(sim, scenario, "alice")
    token = sim.iam.mint_token(scenario.agents["alice"], "alice")
    slow_iam = sim.faults.add(product="iam", kind="delay", delay_s=1.5, when="before", times=1)
    answer: dict = {}
    request = threading.Thread(target=lambda: answer.update(response=requests.post(
        f"{stack.web_url}/v1/transfers", json={"task_sid": other.task_sid, "to": scenario.agents["carol"]},
        headers={"Authorization": f"Bearer {token}"}, timeout=20)))
    request.start()
    assert slow_iam.wait(count=1, timeout=10)
    stack.processes.pop("web").stop()
    request.join(20)
    assert answer["response"].status_code == 202

    stack.launch("web")
    stack.launch("worker")
    assert baton.wait(transfer_id)["status"] == "completed"
    assert baton.wait(answer["response"].json()["id"])["status"] == "completed"
    assert len(invites_of(stack, conversation)) == 1
