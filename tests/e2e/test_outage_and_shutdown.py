"""Redis going away and coming back, and Heroku's SIGTERM: nothing acknowledged is lost.

Each test runs its own stack: these take processes and Redis down on purpose.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import requests
from conftest import ADMIN_TOKEN, TIME_SCALE, Baton
from test_transfer_lifecycle import invites_of

from baton.devstack import DevStack, RedisServer
from simulator.scenario import open_conversation

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to stop and start")]


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


def test_redis_outage_answers_503_loses_nothing_and_recovers_without_restart(own_stack):
    """Redis down: webhooks and API 503, readyz 503, healthz 200; back: queued events run, the web goes on."""
    stack, redis_server = own_stack()
    sim, scenario, baton = stack.simulator, stack.scenario, Baton(stack)
    sim.agents.set_policy(scenario.agents["carol"], [{"action": "accept", "delay": 20}])
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = baton.transfer("alice", conversation.task_sid, scenario.agents["carol"]).json()["id"]
    baton.wait(transfer_id, states=("offered",))

    # The worker is away while Carol accepts: the acceptance is answered 204 and waits in Redis.
    stack.kill("worker")
    deadline = time.monotonic() + 10
    while not [d for d in sim.dispatcher.deliveries if d.params.get("EventType") == "reservation.accepted"
               and d.params.get("TaskSid") == baton.get(transfer_id)["new_task_sid"] and d.status == 204]:
        assert time.monotonic() < deadline, "the acceptance never reached Baton"
        time.sleep(0.05)
    redis_server.stop()

    event = {"EventType": "reservation.created", "Sid": "EV" + "1" * 32, "TaskAttributes": '{"transfer": {"id": "x"}}'}
    assert signed_event(stack, event).status_code == 503
    refused = baton.transfer("alice", conversation.task_sid, scenario.agents["carol"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "unavailable")
    assert requests.get(f"{stack.web_url}/readyz", timeout=10).status_code == 503
    assert requests.get(f"{stack.web_url}/healthz", timeout=10).status_code == 200

    redis_server.start()
    stack.launch("worker")
    assert baton.wait(transfer_id)["status"] == "completed"

    # The web process came through the outage: it takes requests again without a restart. (Celery's
    # worker may not resume consuming after a Redis restart — a known Celery issue, see
    # docs/reliability.md — so its part is checked with a new worker above, not here.)
    redis_server.stop()
    time.sleep(1)
    redis_server.start()
    other = open_conversation(sim, scenario, "alice")
    deadline = time.monotonic() + 20
    while (response := baton.transfer("alice", other.task_sid, scenario.agents["carol"])).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.status_code == 202
    assert requests.get(f"{stack.web_url}/readyz", timeout=10).status_code == 200


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
