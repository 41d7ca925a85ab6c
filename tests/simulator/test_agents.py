"""Scripted agents answering their offers by policy."""

import pytest
from support.simulator import wait_until


@pytest.fixture
def offer(sim, world):
    """Create a task for the everyone queue; returns (task sid, a function reading its reservations' statuses)."""

    def create():
        task = sim.taskrouter.create_task(world.workspace_sid, attributes={}, workflow_sid=world.workflow_sid)
        return task.sid, lambda: [(r.worker.sid, r.status) for r in sim.taskrouter.task(task.sid).reservations]

    return create


@pytest.fixture
def only_alice(sim, world):
    """Take bob offline so that every offer goes to alice."""
    offline = sim.taskrouter.activity(world.workspace_sid, "Offline").sid
    sim.taskrouter.update_worker(world.workspace_sid, world.bob, activity_sid=offline)


def test_accepting_agent_accepts(sim, world, offer, only_alice):
    """An agent scripted to accept accepts its offer after the delay."""
    sim.agents.set_policy(world.alice, [{"action": "accept", "delay": 1}])

    _, reservations = offer()

    assert wait_until(lambda: reservations() == [(world.alice, "accepted")])


def test_steps_are_consumed_per_offer_and_the_last_repeats(sim, world, offer, only_alice):
    """A reject-then-accept agent rejects the first offer and accepts every later one."""
    sim.agents.set_policy(world.alice, [{"action": "reject"}, {"action": "accept"}])

    first_sid, first = offer()
    wait_until(lambda: first() == [(world.alice, "rejected"), (world.alice, "accepted")])
    sim.taskrouter.complete_task(world.workspace_sid, first_sid, "done")
    _, second = offer()

    assert wait_until(lambda: second() == [(world.alice, "accepted")])
    assert [answer.action for answer in sim.agents.answers] == ["reject", "accept", "accept"]


def test_ignoring_agent_lets_the_offer_time_out(sim, world, offer, only_alice):
    """An agent scripted to ignore never answers, so the reservation times out."""
    sim.agents.set_policy(world.alice, [{"action": "ignore"}, {"action": "accept"}])

    _, reservations = offer()

    assert wait_until(lambda: reservations()[:1] == [(world.alice, "timeout")])


def test_late_answer_is_tolerated(sim, world, only_alice):
    """An answer scheduled after the offer ended changes nothing and raises nothing."""
    taskrouter = sim.taskrouter
    patient = taskrouter.create_workflow(world.workspace_sid, "Patient", {"task_routing": {
        "filters": [], "default_filter": {"queue": world.queue_sid}}}, task_reservation_timeout=1000)
    sim.agents.set_policy(world.alice, [{"action": "accept", "delay": 20}])
    task = taskrouter.create_task(world.workspace_sid, attributes={}, workflow_sid=patient.sid)

    taskrouter.update_reservation(world.workspace_sid, task.sid, task.reservations[0].sid, "rejected")

    wait_until(lambda: [r.status for r in taskrouter.task(task.sid).reservations] == ["rejected", "accepted"])
    assert len(sim.agents.answers) == 2


def test_workers_without_policy_are_left_alone(sim, world, offer, only_alice):
    """An offer to a worker without a policy stays pending."""
    _, reservations = offer()

    assert reservations() == [(world.alice, "pending")]
    assert sim.agents.policy(world.alice) is None


@pytest.mark.parametrize("step", [{"action": "dance"}, {"action": "accept", "delay": -1}, {"delay": 1}])
def test_malformed_steps_are_refused(sim, world, step):
    """A step with an unknown action or a negative delay is refused."""
    with pytest.raises(ValueError):
        sim.agents.set_policy(world.alice, [step])
