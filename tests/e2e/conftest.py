"""The stack for end-to-end tests: real Redis, gunicorn and a Celery worker process, the simulator.

One stack serves a test module; each test opens its own conversations, so tests don't share
transfers. Scripted agents' policies and settings a test changes are restored after it.
"""

from __future__ import annotations

import time

import pytest
import requests

from baton.infrastructure.store import Store, connect_redis
from baton.operator.devstack import DevStack
from simulator.scenario import AGENTS, open_conversation, route_taskrouter_events

TIME_SCALE = 0.05
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def stack(stack_redis):
    devstack = DevStack(stack_redis, time_scale=TIME_SCALE,
                        extra_env={"ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": "e2e-secret-key-0123456789",
                                   # Reconciliation runs all along, as in production, only faster.
                                   "RECONCILE_EVERY_S": "1", "RECONCILE_AFTER_S": "3",
                                   # The shortest: a killed worker's lock blocks its transfer this long.
                                   "LOCK_TIMEOUT_S": "11"})
    devstack.start()
    yield devstack
    devstack.stop()


class Baton:
    """Baton's agent and admin API, as a Flex UI plugin or an operator calls it."""

    def __init__(self, stack: DevStack, admin_token: str = ADMIN_TOKEN):
        self.url = stack.web_url
        self.tokens = stack.scenario.tokens
        self.admin_token = admin_token
        self.session = requests.Session()

    def transfer(self, agent: str, task_sid: str, to: str, **fields) -> requests.Response:
        return self.session.post(f"{self.url}/v1/transfers", json={"task_sid": task_sid, "to": to, **fields},
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)

    def get(self, transfer_id: str, agent: str = "erin") -> dict:
        response = self.session.get(f"{self.url}/v1/transfers/{transfer_id}",
                                    headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def cancel(self, transfer_id: str, agent: str) -> requests.Response:
        return self.session.post(f"{self.url}/v1/transfers/{transfer_id}/cancel",
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)

    def settings(self, **changes) -> dict:
        response = self.session.patch(f"{self.url}/v1/settings", json=changes,
                                      headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait(self, transfer_id: str, states=("completed", "failed", "canceled"), timeout: float = 20) -> dict:
        """The transfer once it reaches one of ``states``; fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            transfer = self.get(transfer_id)
            if transfer["status"] in states:
                return transfer
            if time.monotonic() > deadline:
                pytest.fail(f"transfer stuck in {transfer['status']}: {transfer['timeline']}")
            time.sleep(0.05)


@pytest.fixture
def baton(stack):
    """Baton's API for one test; the settings and the agents' request windows come back afterwards."""
    client = Baton(stack)
    defaults = client.settings()
    yield client
    client.settings(**defaults)
    store = Store(connect_redis(stack.redis_url))
    for key in store.redis.scan_iter(f"{store.prefix}ratelimit:*"):
        store.redis.delete(key)


@pytest.fixture
def agents(stack):
    """Script agents for one test; their default policies and availability come back afterwards."""
    sim, scenario = stack.simulator, stack.scenario

    class Agents:
        def policy(self, name: str, *steps: dict) -> None:
            sim.agents.set_policy(scenario.agents[name], list(steps))

        def activity(self, name: str, activity: str) -> None:
            sim.taskrouter.update_worker(scenario.workspace_sid, scenario.agents[name],
                                         activity_sid=sim.taskrouter.activity(scenario.workspace_sid, activity).sid)

    yield Agents()
    for name, (_, activity, _, policy) in AGENTS.items():
        sim.agents.set_policy(scenario.agents[name], policy)
        Agents().activity(name, activity)


# The readings of Twilio's ambiguous behaviours the lifecycle tests run under (docs/twilio-behaviour.md):
# a simulator profile, and how many agents the scenario's queues reserve at once (MaxReservedWorkers).
READINGS = {
    "documented": ("documented", 1),
    "documented, queues reserving 3": ("documented", 3),
    "alternate": ("alternate", 1),
}

# How TaskRouter's events reach Baton (simulator.scenario.EVENT_PATHS), paired with the readings rather than
# multiplied by them: every reading through the workspace's callback; the documented and the alternate profile
# (each plays one reading of every Event Streams switch: the shape of ``data``, the signature, the sink's
# validation) through Event Streams only, queues reserving 3 being about routing, not delivery; and both paths
# at once, under the documented profile, only for the tests marked ``both_event_paths``: those where an event
# handled twice would show (duplicated and reordered deliveries, a refusal re-routed once).
EVENT_RUNS = [(reading, "callback") for reading in READINGS] + [("documented", "streams"), ("alternate", "streams")]
BOTH_PATHS_RUN = ("documented", "both")
EVENT_PATH_NAMES = {"streams": "Event Streams only", "both": "callback and Event Streams"}


def pytest_configure(config):
    config.addinivalue_line("markers", "both_event_paths: also run with TaskRouter's events coming both ways at once")


def pytest_generate_tests(metafunc):
    """Each test under the ``reading`` fixture runs once per EVENT_RUNS pair (and BOTH_PATHS_RUN if marked)."""
    if "reading" not in metafunc.fixturenames:
        return
    runs = EVENT_RUNS + ([BOTH_PATHS_RUN] if metafunc.definition.get_closest_marker("both_event_paths") else [])
    ids = [reading if events == "callback" else f"{reading}, {EVENT_PATH_NAMES[events]}" for reading, events in runs]
    metafunc.parametrize(("reading", "events"), runs, ids=ids, indirect=True)


@pytest.fixture
def events(request, stack):
    """TaskRouter's events to Baton by one path for one test (``callback`` unless parametrized); the callback alone
    comes back afterwards."""
    path = getattr(request, "param", "callback")
    route_taskrouter_events(stack.simulator, stack.scenario, stack.web_url, path)
    yield path
    if path != "callback":
        route_taskrouter_events(stack.simulator, stack.scenario, stack.web_url, "callback")


@pytest.fixture
def reading(request, stack, events):
    """Play one reading of Twilio's docs for one test; the documented one comes back afterwards."""
    profile, reserved = READINGS[request.param]
    sim, scenario = stack.simulator, stack.scenario

    def reserve(workers: int) -> None:
        for queue_sid in scenario.queues.values():
            sim.taskrouter.update_task_queue(scenario.workspace_sid, queue_sid, max_reserved_workers=workers)

    sim.profile.update(profile)
    reserve(reserved)
    yield request.param
    sim.profile.update("documented")
    reserve(1)


@pytest.fixture
def conversation(stack):
    """A fresh chat that Alice holds; afterwards every task of it is ended, so agents' capacity is as before."""
    sim, scenario = stack.simulator, stack.scenario
    chat = open_conversation(sim, scenario, "alice")
    yield chat
    for task_sid in sim.flex.channel(chat.interaction_sid, chat.channel_sid).task_sids:
        status = sim.taskrouter.task(task_sid).assignment_status
        if status in ("pending", "reserved"):
            sim.taskrouter.cancel_task(scenario.workspace_sid, task_sid, "test over")
        elif status in ("assigned", "wrapping"):
            sim.taskrouter.complete_task(scenario.workspace_sid, task_sid, "test over")
