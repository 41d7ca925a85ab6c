"""What only the end-to-end tests use, beside the live stack of tests/fixtures/stack.py: scripted agents, the
readings of Twilio's ambiguous behaviours and the paths of its events, a fresh conversation per test.

Scripted agents' policies and readings a test changes are restored after it.
"""

from __future__ import annotations

import pytest

from simulator.scenario import AGENTS, open_conversation, route_taskrouter_events


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
