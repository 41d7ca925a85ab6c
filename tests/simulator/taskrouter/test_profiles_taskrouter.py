"""The simulated TaskRouter under each reading of its profile switches: workflow_end, redrive, reservations."""

import logging

import pytest
from support.simulator import wait_until
from test_taskrouter import World, transfer_workflow, wait_for

from simulator.core import SimError
from simulator.profiles import READINGS

# Long enough that no offer times out unless a test waits for it (simulated seconds).
PATIENT = 1000


@pytest.fixture
def world(sim):
    """A workspace of the served simulator, so the switches are the simulator's own profile."""
    router = sim.taskrouter
    workspace = router.create_workspace("Profiles")
    world = World(router, workspace, router.create_task_queue(workspace.sid, "Everyone"))
    router.add_listener(world.events.append)
    return world


def known_worker_then_default(world, default_queue, step_timeout=5):
    """One filter of a single known-worker step with a timeout, and a default filter."""
    return world.workflow(
        [{"filter_friendly_name": "to worker", "expression": "1==1",
          "targets": [{"queue": world.everyone.sid, "known_worker_sid": "task.preferred", "timeout": step_timeout}]}],
        default_queue=default_queue, reservation_timeout=PATIENT)


def multi_queue(world, size=3):
    queue = world.router.create_task_queue(world.ws, "Many", max_reserved_workers=size)
    return queue, world.workflow([{"expression": "1==1", "targets": [{"queue": queue.sid}]}],
                                 reservation_timeout=PATIENT)


def answer(world, reservation, status, **params):
    return world.call("UpdateTaskReservation", {"TaskSid": reservation.task.sid, "Sid": reservation.sid},
                      {"ReservationStatus": status, **params})


# --- workflow_end ---


def test_workflow_end_cancel_cancels_a_task_timed_out_of_its_filter(world):
    """"cancel": after the last timed step, workflow.timeout and the task is canceled; the default filter is unused."""
    ada = world.worker("ada", available=False)
    fallback = world.router.create_task_queue(world.ws, "Fallback")
    task = world.task(known_worker_then_default(world, fallback), preferred=ada.sid)
    wait_for(lambda: task.assignment_status == "canceled", world.router.clock.lock)
    assert task.reason == "Workflow Timeout"
    assert world.types(task.sid)[-2:] == ["workflow.timeout", "task.canceled"]
    assert task.queue is world.everyone


def test_workflow_end_default_filter_moves_the_task_to_the_default_queue(world):
    """"default_filter": after workflow.timeout the task waits in the default filter's queue, without a deadline."""
    world.router.profile.update(workflow_end="default_filter")
    ada = world.worker("ada", available=False)
    fallback = world.router.create_task_queue(world.ws, "Fallback", target_workers="team == 'b'")
    task = world.task(known_worker_then_default(world, fallback), preferred=ada.sid)
    wait_for(lambda: task.queue is fallback, world.router.clock.lock)
    assert world.types(task.sid)[-3:] == ["workflow.timeout", "workflow.target-matched", "task-queue.entered"]
    assert task.assignment_status == "pending"


@pytest.mark.parametrize("reading", READINGS["workflow_end"])
def test_default_filter_takes_a_task_that_matches_no_filter(world, reading):
    """In either reading, a task that matches no filter waits in the default filter's queue."""
    world.router.profile.update(workflow_end=reading)
    fallback = world.router.create_task_queue(world.ws, "Fallback")
    flow = world.workflow([{"expression": "kind == 'vip'", "targets": [{"queue": world.everyone.sid, "timeout": 5}]}],
                          default_queue=fallback)
    task = world.task(flow, kind="plain")
    assert (task.assignment_status, task.queue) == ("pending", fallback)
    assert "workflow.timeout" not in world.types(task.sid)


# --- redrive ---


@pytest.mark.parametrize(("reading", "offered", "queue"), [
    ("pending_only", "ada", "Everyone"),
    ("rematch", "bob", "Fallback"),
])
def test_attributes_updated_while_reserved_and_a_rejection(world, reading, offered, queue):
    """An update while reserved leaves the filter alone ("pending_only": the known worker is offered it again)
    or is matched when the offer ends ("rematch": the queue filter, which excludes the rejecter)."""
    world.router.profile.update(redrive=reading)
    ada, _ = world.worker("ada"), world.worker("bob")
    fallback = world.router.create_task_queue(world.ws, "Fallback")
    task = world.task(transfer_workflow(world, fallback, reservation_timeout=PATIENT),
                      transferTargetType="worker", transferTargetSid=ada.sid)
    world.router.update_task(world.ws, task.sid, attributes={
        **task.attributes, "transferTargetType": "queue", "transferQueueSid": fallback.sid,
        "transferExcludedWorkers": [ada.sid]})
    assert world.offers(task) == [("ada", "pending")]

    world.router.update_reservation(world.ws, task.sid, task.reservations[0].sid, "rejected")

    assert world.offers(task) == [("ada", "rejected"), (offered, "pending")]
    assert task.queue.friendly_name == queue
    assert world.types(task.sid).count("workflow.entered") == 1


@pytest.mark.parametrize("reading", READINGS["redrive"])
def test_step_expired_while_reserved_moves_on_when_the_offer_ends(world, reading):
    """The step's deadline passing during an offer takes effect when the offer ends: the next step is entered."""
    world.router.profile.update(redrive=reading)
    ada, _ = world.worker("ada"), world.worker("bob")
    flow = world.workflow([{"expression": "1==1", "targets": [
        {"queue": world.everyone.sid, "known_worker_sid": "task.preferred", "timeout": 5},
        {"queue": world.everyone.sid},
    ]}], reservation_timeout=PATIENT)
    task = world.task(flow, preferred=ada.sid)
    wait_for(lambda: task.progress.expired, world.router.clock.lock)
    assert world.offers(task) == [("ada", "pending")]

    world.router.update_reservation(world.ws, task.sid, task.reservations[0].sid, "rejected")

    assert world.offers(task) == [("ada", "rejected"), ("bob", "pending")]
    assert world.types(task.sid).count("workflow.target-matched") == 2


# --- reservations ---


def test_per_queue_offers_several_workers_and_the_first_acceptance_wins(world):
    """"per_queue": up to MaxReservedWorkers reservations at once; an acceptance rescinds the others."""
    ada, bob, cy = (world.worker(name) for name in ("ada", "bob", "cy"))
    queue, flow = multi_queue(world)
    task = world.task(flow)
    assert world.offers(task) == [("ada", "pending"), ("bob", "pending"), ("cy", "pending")]
    assert world.types(task.sid).count("reservation.created") == 3
    assert task.assignment_status == "reserved"

    answer(world, task.reservations[1], "accepted")

    assert world.offers(task) == [("ada", "rescinded"), ("bob", "accepted"), ("cy", "rescinded")]
    assert task.assignment_status == "assigned"
    assert world.types(task.sid)[-3:] == ["reservation.accepted", "reservation.rescinded", "reservation.rescinded"]
    rescinded = [e for e in world.events if e["EventType"] == "reservation.rescinded"]
    assert [e["WorkerSid"] for e in rescinded] == [ada.sid, cy.sid]
    assert all(e["TaskQueueSid"] == queue.sid and e["ReservationSid"] for e in rescinded)
    assert ada.channel("chat").has_room and cy.channel("chat").has_room
    assert not bob.channel("chat").has_room
    listed = world.call("ListTaskReservation", {"TaskSid": task.sid}, {"ReservationStatus": "rescinded"}, method="GET")
    assert [r["worker_name"] for r in listed] == ["ada", "cy"]
    with pytest.raises(SimError) as late:
        answer(world, task.reservations[0], "accepted")
    assert late.value.status == 400


def test_per_queue_task_is_pending_again_only_once_every_reservation_ended(world):
    """"per_queue": a rejection or timeout of one reservation leaves the task reserved while others are pending."""
    for name in ("ada", "bob", "cy"):
        world.worker(name)
    _, flow = multi_queue(world)
    task = world.task(flow)
    offline = world.router.activity(world.ws, "Offline").sid
    statuses = []
    for reservation in list(task.reservations):
        answer(world, reservation, "rejected", WorkerActivitySid=offline)
        statuses.append(task.assignment_status)
    assert statuses == ["reserved", "reserved", "pending"]
    assert len(task.reservations) == 3


def test_per_queue_tops_up_a_reserved_task_but_not_with_a_worker_who_had_it(world):
    """A reserved task short of MaxReservedWorkers is offered to workers who become available, not to a rejecter."""
    for name in ("ada", "bob"):
        world.worker(name)
    cy = world.worker("cy", available=False)
    _, flow = multi_queue(world)
    task = world.task(flow)
    assert world.offers(task) == [("ada", "pending"), ("bob", "pending")]

    answer(world, task.reservations[0], "rejected")
    world.set_activity(cy, "Available")

    assert world.offers(task) == [("ada", "rejected"), ("bob", "pending"), ("cy", "pending")]
    assert (task.assignment_status, task.assignment_count) == ("reserved", 1)


def test_per_queue_known_worker_target_reserves_only_that_worker(world):
    """A known-worker step offers its one worker, whatever the queue's MaxReservedWorkers."""
    world.worker("ada")
    bob = world.worker("bob")
    queue, _ = multi_queue(world)
    flow = world.workflow([{"expression": "1==1", "targets": [{"queue": queue.sid, "known_worker_sid": bob.sid}]}])
    assert world.offers(world.task(flow)) == [("bob", "pending")]


def test_one_offers_a_single_worker_whatever_the_queue_says(world):
    """"one": one reservation at a time; the next worker only when it ends."""
    world.router.profile.update(reservations="one")
    for name in ("ada", "bob", "cy"):
        world.worker(name)
    _, flow = multi_queue(world)
    task = world.task(flow)
    assert world.offers(task) == [("ada", "pending")]
    answer(world, task.reservations[0], "rejected", WorkerActivitySid=world.router.activity(world.ws, "Offline").sid)
    assert world.offers(task) == [("ada", "rejected"), ("bob", "pending")]


@pytest.mark.parametrize("delete", [False, True])
def test_per_queue_canceling_or_deleting_a_task_cancels_every_reservation(world, delete):
    """Every pending reservation of a canceled or deleted task is canceled, and the workers freed."""
    workers = [world.worker(name) for name in ("ada", "bob", "cy")]
    _, flow = multi_queue(world)
    task = world.task(flow)
    if delete:
        world.router.delete_task(world.ws, task.sid)
    else:
        world.router.cancel_task(world.ws, task.sid, "customer left")
    assert [status for _, status in world.offers(task)] == ["canceled"] * 3
    assert world.types(task.sid)[-4:] == ["reservation.canceled"] * 3 + ["task.deleted" if delete else "task.canceled"]
    assert all(worker.channel("chat").has_room for worker in workers)


def test_per_queue_scripted_agents_who_answer_a_rescinded_offer_are_ignored(sim, world, caplog):
    """Scripted agents accepting an offer already rescinded come too late, like a late click in Flex."""
    caplog.set_level(logging.DEBUG, logger="simulator.agents")
    workers = [world.worker(name) for name in ("ada", "bob", "cy")]
    for delay, worker in zip((0.5, 0.1, 0.5), workers, strict=True):
        sim.agents.set_policy(worker.sid, [{"action": "accept", "delay": delay}])
    _, flow = multi_queue(world)
    task = world.task(flow)
    wait_until(lambda: sum("came too late" in record.getMessage() for record in caplog.records) == 2)
    assert world.offers(task) == [("ada", "rescinded"), ("bob", "accepted"), ("cy", "rescinded")]
    assert task.assignment_status == "assigned"


def test_max_reserved_workers_is_1_to_50(world):
    """TaskQueue MaxReservedWorkers outside 1..50 is refused with 400, on create and on update."""
    created = world.call("CreateTaskQueue", {}, {"FriendlyName": "Most", "MaxReservedWorkers": "50"})
    assert (created.status, created.body["max_reserved_workers"]) == (201, 50)
    for count in ("0", "51"):
        for operation, path_params in (("CreateTaskQueue", {}), ("UpdateTaskQueue", {"Sid": world.everyone.sid})):
            with pytest.raises(SimError) as refused:
                world.call(operation, path_params, {"FriendlyName": f"q{count}", "MaxReservedWorkers": count})
            assert refused.value.status == 400
    assert world.everyone.max_reserved_workers == 1
