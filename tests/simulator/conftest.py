"""Fixtures for the simulator's tests: a served simulator, clients for it, a webhook receiver, a Flex world.

``sim`` and ``client`` override the suite's (tests/fixtures/edge.py): a simulator of one test's own, and the
twilio SDK's client of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from support.simulator import Api, Receiver
from twilio.rest import Client

from baton.infrastructure.twilio_gateway import RoutingHttpClient
from simulator import Simulator


@dataclass(frozen=True)
class FlexWorld:
    """A workspace with one queue of everyone, a workflow to it, and two available agents."""

    workspace_sid: str
    workflow_sid: str
    queue_sid: str
    alice: str
    bob: str


@pytest.fixture
def sim():
    with Simulator(time_scale=0.01) as simulator:
        simulator.serve()
        yield simulator


@pytest.fixture
def api(sim):
    return Api(sim)


@pytest.fixture
def client(sim):
    return Client(sim.account_sid, sim.auth_token, http_client=RoutingHttpClient(sim.url))


@pytest.fixture
def receiver(sim):
    hooks = Receiver(sim.auth_token)
    yield hooks
    hooks.stop()


@pytest.fixture
def world(sim):
    taskrouter = sim.taskrouter
    workspace = taskrouter.create_workspace("Flex Task Assignment")
    available = taskrouter.activity(workspace.sid, "Available").sid
    queue = taskrouter.create_task_queue(workspace.sid, "Everyone")
    workflow = taskrouter.create_workflow(
        workspace.sid, "Assign to Anyone",
        {"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}},
        task_reservation_timeout=10,
    )
    alice = taskrouter.create_worker(workspace.sid, "alice", attributes={"contact_uri": "client:alice"},
                                     activity_sid=available)
    bob = taskrouter.create_worker(workspace.sid, "bob", activity_sid=available)
    return FlexWorld(workspace.sid, workflow.sid, queue.sid, alice.sid, bob.sid)
