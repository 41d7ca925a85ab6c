import json
import threading
import time
from dataclasses import dataclass, field

import pytest

from simulator.core import ApiRequest, ApiResult, Clock, SimError, WebhookDispatcher
from simulator.profiles import READINGS
from simulator.taskrouter import TaskQueue, TaskRouter, Worker, Workspace

ACCOUNT = "AC" + "0" * 32
# Simulated seconds are scaled by 0.01: a 10 s step timeout lasts 0.1 s of the test's time.
SCALE = 0.01


@dataclass
class World:
    router: TaskRouter
    workspace: Workspace
    everyone: TaskQueue
    events: list[dict[str, str]] = field(default_factory=list)

    @property
    def ws(self) -> str:
        return self.workspace.sid

    def worker(self, name: str, *, available: bool = True, **attributes) -> Worker:
        activity = self.router.activity(self.ws, "Available" if available else "Offline")
        return self.router.create_worker(self.ws, name, attributes=attributes, activity_sid=activity.sid)

    def set_activity(self, worker: Worker, name: str) -> None:
        self.router.update_worker(self.ws, worker.sid, activity_sid=self.router.activity(self.ws, name).sid)

    def workflow(self, filters, default_queue=None, reservation_timeout=120):
        routing = {"filters": filters}
        if default_queue:
            routing["default_filter"] = {"queue": default_queue.sid}
        return self.router.create_workflow(self.ws, "flow", {"task_routing": routing},
                                           task_reservation_timeout=reservation_timeout)

    def task(self, workflow, channel="chat", **attributes):
        return self.router.create_task(self.ws, attributes=attributes, workflow_sid=workflow.sid, task_channel=channel)

    def types(self, task_sid=None) -> list[str]:
        with self.router.clock.lock:
            return [e["EventType"] for e in self.events if task_sid is None or e.get("TaskSid") == task_sid]

    def offers(self, task) -> list[tuple[str, str]]:
        with self.router.clock.lock:
            return [(r.worker.friendly_name, r.status) for r in task.reservations]

    def call(self, operation, path_params, params=None, headers=None, method="POST"):
        request = ApiRequest(method, "/v1/test", {"WorkspaceSid": self.ws, **path_params}, params or {},
                             headers or {})
        return self.router.handlers()[operation](request)


def wait_for(predicate, lock, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if predicate():
                return
        time.sleep(0.005)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def clock():
    clock = Clock(threading.RLock(), time_scale=SCALE)
    yield clock
    clock.stop()


@pytest.fixture
def dispatcher():
    dispatcher = WebhookDispatcher("test-token")
    # Every webhook is recorded as dropped: the tests see what would be posted without a network.
    dispatcher.drop = lambda url, params: True
    yield dispatcher
    dispatcher.stop()


@pytest.fixture
def world(clock, dispatcher):
    router = TaskRouter(ACCOUNT, clock, dispatcher)
    workspace = router.create_workspace("Test")
    world = World(router, workspace, router.create_task_queue(workspace.sid, "Everyone"))
    router.add_listener(world.events.append)
    return world


def transfer_workflow(world, fallback, offer_timeout=1000, reservation_timeout=120):
    """The workflow `baton setup` writes: a known-worker step, one queue step per queue, a default."""
    return world.workflow(
        [
            {"filter_friendly_name": "to worker", "expression": 'transferTargetType == "worker"',
             "targets": [{"queue": world.everyone.sid, "known_worker_sid": "task.transferTargetSid",
                          "timeout": offer_timeout}]},
            {"filter_friendly_name": "to queue",
             "expression": f'transferTargetType == "queue" AND transferQueueSid == "{fallback.sid}"',
             "targets": [{"queue": fallback.sid, "expression": "worker.sid NOT IN task.transferExcludedWorkers"}]},
        ],
        default_queue=fallback,
        reservation_timeout=reservation_timeout,
    )


def everyone_workflow(world, **target):
    return world.workflow([{"expression": "1==1", "targets": [{"queue": world.everyone.sid, **target}]}])


def test_workspace_defaults(world):
    """A new workspace has Twilio's default activities and task channels, Offline for default and timeout."""
    resource = world.workspace.to_resource()
    activities = {a["friendly_name"]: a["available"] for a in world.call("ListActivity", {}, method="GET")}
    channels = {c["unique_name"] for c in world.call("ListTaskChannel", {}, method="GET")}
    assert activities == {"Offline": False, "Available": True, "Unavailable": False, "Break": False}
    assert channels == {"default", "voice", "chat", "sms", "video", "email"}
    assert resource["default_activity_name"] == resource["timeout_activity_name"] == "Offline"
    assert resource["multi_task_enabled"] is True
    assert resource["url"] == f"https://taskrouter.twilio.com/v1/Workspaces/{world.ws}"
    assert resource["links"]["tasks"].endswith(f"/Workspaces/{world.ws}/Tasks")


def test_new_worker_starts_offline_with_a_channel_per_task_channel(world):
    """A worker created without an activity is Offline and has capacity 1 on every channel."""
    worker = world.router.create_worker(world.ws, "ada", attributes={"skills": ["en"]})
    channels = world.call("ListWorkerChannel", {"WorkerSid": worker.sid}, method="GET")
    assert worker.to_resource()["available"] is False
    assert worker.to_resource()["activity_name"] == "Offline"
    assert {c["task_channel_unique_name"]: c["configured_capacity"] for c in channels}["chat"] == 1
    assert all(c["available_capacity_percentage"] == 100 for c in channels)


def test_unavailable_worker_is_not_offered_until_available(world):
    """A task waits while its only worker is offline and is offered once the worker is available."""
    worker = world.worker("ada", available=False)
    task = world.task(everyone_workflow(world))
    assert task.assignment_status == "pending"
    world.set_activity(worker, "Available")
    assert world.offers(task) == [("ada", "pending")]
    assert task.assignment_status == "reserved"


def test_worker_channel_capacity_limits_offers(world):
    """A worker is offered no more tasks of a channel than its capacity, and more once raised."""
    ada = world.worker("ada")
    flow = everyone_workflow(world)
    first, second = world.task(flow), world.task(flow)
    assert (first.assignment_status, second.assignment_status) == ("reserved", "pending")
    world.router.update_worker_channel(world.ws, ada.sid, "chat", capacity=2)
    assert second.assignment_status == "reserved"
    assert "worker.capacity.update" in world.types()


def test_switched_off_worker_channel_gets_no_offers(world):
    """A worker channel set unavailable receives no task of that channel, other channels still do."""
    worker = world.worker("ada")
    world.router.update_worker_channel(world.ws, worker.sid, "chat", available=False)
    flow = everyone_workflow(world)
    chat, sms = world.task(flow, channel="chat"), world.task(flow, channel="sms")
    assert (chat.assignment_status, sms.assignment_status) == ("pending", "reserved")


def test_queue_target_workers_decide_membership(world):
    """Only workers whose attributes match the queue's target_workers are offered its tasks."""
    world.worker("ada", languages=["fr"])
    world.worker("bob", languages=["es"])
    spanish = world.router.create_task_queue(world.ws, "Spanish", target_workers="languages HAS 'es'")
    task = world.task(world.workflow([{"expression": "1==1", "targets": [{"queue": spanish.sid}]}]))
    assert world.offers(task) == [("bob", "pending")]


def test_target_expression_sees_task_and_worker(world):
    """A target expression compares worker attributes with the task's."""
    world.worker("ada", level=1)
    world.worker("bob", level=3)
    task = world.task(everyone_workflow(world, expression="worker.level >= task.required_level"), required_level=2)
    assert world.offers(task) == [("bob", "pending")]


def test_worker_offered_least_recently_goes_first(world):
    """Between eligible workers, the one offered a task least recently is chosen."""
    for name in ("ada", "bob"):
        world.router.update_worker_channel(world.ws, world.worker(name).sid, "chat", capacity=2)
    flow = everyone_workflow(world)
    chosen = [world.offers(world.task(flow))[0][0] for _ in range(3)]
    assert chosen == ["ada", "bob", "ada"]


def test_routing_target_worker_ignores_availability_and_counts_in_queue(world):
    """A task routed straight to a worker is offered even when the worker is offline, in the named queue."""
    ada = world.worker("ada", available=False)
    task = world.router.create_task(world.ws, attributes={}, routing_target=ada.sid,
                                    task_queue_sid=world.everyone.sid)
    assert world.offers(task) == [("ada", "pending")]
    assert task.to_resource()["task_queue_sid"] == world.everyone.sid
    assert task.to_resource()["ignore_capacity"] is True


def test_known_worker_step_then_queue_step_after_its_timeout(world):
    """A known-worker step waits for that worker; after its timeout the next step offers the queue."""
    ada, _ = world.worker("ada", available=False), world.worker("bob")
    flow = world.workflow([{"expression": "1==1", "targets": [
        {"queue": world.everyone.sid, "known_worker_sid": "task.preferred", "timeout": 10},
        {"queue": world.everyone.sid},
    ]}])
    task = world.task(flow, preferred=ada.sid)
    assert task.assignment_status == "pending"
    wait_for(lambda: task.reservations, world.router.clock.lock)
    assert world.offers(task) == [("bob", "pending")]
    assert world.types(task.sid).count("workflow.target-matched") == 2


def test_rejected_task_is_offered_again_to_the_same_known_worker(world):
    """A rejection in a known-worker step puts the task back to pending and offers it to that worker again."""
    ada, _ = world.worker("ada"), world.worker("bob")
    task = world.task(transfer_workflow(world, world.everyone), transferTargetType="worker", transferTargetSid=ada.sid)
    world.router.update_reservation(world.ws, task.sid, task.reservations[0].sid, "rejected")
    assert world.offers(task) == [("ada", "rejected"), ("ada", "pending")]
    assert world.types(task.sid)[-2:] == ["reservation.rejected", "reservation.created"]


@pytest.mark.parametrize("redrive", READINGS["redrive"])
def test_attribute_update_of_pending_task_redrives_it(world, redrive):
    """Updating a pending task's attributes routes it again from the first filter, in either redrive reading."""
    world.router.profile.update(redrive=redrive)
    ada, _ = world.worker("ada", available=False), world.worker("bob")
    fallback = world.router.create_task_queue(world.ws, "Fallback")
    task = world.task(transfer_workflow(world, fallback), transferTargetType="worker", transferTargetSid=ada.sid)
    assert task.assignment_status == "pending"
    attributes = {**task.attributes, "transferTargetType": "queue", "transferQueueSid": fallback.sid,
                  "transferExcludedWorkers": [ada.sid]}
    world.router.update_task(world.ws, task.sid, attributes=attributes, if_match=str(task.version))
    assert world.offers(task) == [("bob", "pending")]
    assert task.queue is fallback
    assert world.types(task.sid).count("workflow.entered") == 2


def test_reservation_timeout_moves_worker_to_timeout_activity(world):
    """An unanswered offer times out, its worker goes to the timeout activity and the next worker is offered."""
    ada, bob = world.worker("ada"), world.worker("bob")
    flow = world.workflow([{"expression": "1==1", "targets": [{"queue": world.everyone.sid}]}],
                          reservation_timeout=10)
    task = world.task(flow)
    wait_for(lambda: len(task.reservations) == 2, world.router.clock.lock)
    assert world.offers(task)[0] == ("ada", "timeout")
    assert task.reservations[1].worker is bob
    assert ada.activity.friendly_name == "Offline"
    types = world.types()
    assert types[types.index("reservation.timeout"):][:3] == [
        "reservation.timeout", "worker.activity.update", "reservation.created"]


def test_if_match_must_equal_the_current_etag(world):
    """An update with a stale If-Match is refused with 412 and changes nothing."""
    task = world.task(everyone_workflow(world), note="a")
    fetched = world.call("FetchTask", {"Sid": task.sid}, method="GET")
    etag = fetched.headers["ETag"]
    with pytest.raises(SimError) as refused:
        world.call("UpdateTask", {"Sid": task.sid}, {"Attributes": '{"note": "b"}'}, {"If-Match": str(int(etag) - 1)})
    updated = world.call("UpdateTask", {"Sid": task.sid}, {"Attributes": '{"note": "c"}'}, {"if-match": etag})
    assert (refused.value.status, refused.value.code) == (412, 20412)
    assert json.loads(updated.body["attributes"]) == {"note": "c"}
    assert int(updated.headers["ETag"]) > int(etag)


def test_accept_wrapup_complete(world):
    """Accept assigns the task, wrapup and complete move task and reservation on and free the capacity."""
    ada = world.worker("ada")
    task = world.task(everyone_workflow(world))
    reservation = task.reservations[0]
    world.router.update_reservation(world.ws, task.sid, reservation.sid, "accepted")
    assert (task.assignment_status, ada.channel("chat").assigned_tasks) == ("assigned", 1)
    world.router.wrapup_task(world.ws, task.sid, "done talking")
    assert (task.assignment_status, reservation.status) == ("wrapping", "wrapping")
    world.router.complete_task(world.ws, task.sid, "resolved")
    assert (task.assignment_status, reservation.status, task.reason) == ("completed", "completed", "resolved")
    assert ada.channel("chat").available_capacity_percentage == 100
    assert world.types(task.sid)[-5:] == ["reservation.accepted", "task.wrapup", "reservation.wrapup",
                                          "task.completed", "reservation.completed"]
    assert world.events[-2]["TaskCompletedReason"] == "resolved"


def test_cancel_reserved_task_cancels_its_reservation(world):
    """Canceling a reserved task cancels the pending reservation first, then the task."""
    world.worker("ada")
    task = world.task(everyone_workflow(world))
    world.router.cancel_task(world.ws, task.sid, "customer left")
    assert (task.assignment_status, task.reservations[0].status) == ("canceled", "canceled")
    assert world.types(task.sid)[-2:] == ["reservation.canceled", "task.canceled"]
    assert world.events[-1]["TaskCanceledReason"] == "customer left"


@pytest.mark.parametrize(
    ("accepted", "status"),
    [(False, "completed"), (False, "wrapping"), (True, "canceled"), (True, "pending"), (False, "assigned")],
)
def test_invalid_transitions_are_400(world, accepted, status):
    """Moving a task to a status its current one does not lead to is refused with 400 20001."""
    world.worker("ada")
    task = world.task(everyone_workflow(world))
    if accepted:
        world.router.update_reservation(world.ws, task.sid, task.reservations[0].sid, "accepted")
    before = (task.assignment_status, task.version)
    with pytest.raises(SimError) as refused:
        world.router.update_task(world.ws, task.sid, assignment_status=status, reason="x")
    assert (refused.value.status, refused.value.code) == (400, 20001)
    assert (task.assignment_status, task.version) == before


def test_answering_a_finished_reservation_is_400(world):
    """A reservation that is no longer pending can be neither accepted nor rejected."""
    world.worker("ada")
    task = world.task(everyone_workflow(world))
    world.router.cancel_task(world.ws, task.sid, "gone")
    with pytest.raises(SimError) as refused:
        world.router.update_reservation(world.ws, task.sid, task.reservations[0].sid, "accepted")
    assert refused.value.status == 400


def test_delete_task(world):
    """Deleting a reserved task cancels its reservation, fires task.deleted and makes it unknown."""
    ada = world.worker("ada")
    task = world.task(everyone_workflow(world))
    deleted = world.call("DeleteTask", {"Sid": task.sid}, headers={"If-Match": str(task.version)}, method="DELETE")
    with pytest.raises(SimError) as missing:
        world.call("FetchTask", {"Sid": task.sid}, method="GET")
    assert (deleted.status, missing.value.status) == (204, 404)
    assert world.types(task.sid)[-2:] == ["reservation.canceled", "task.deleted"]
    assert ada.channel("chat").has_room


def test_resources_in_use_cannot_be_deleted(world):
    """A queue a workflow routes to and a worker holding a reservation are refused deletion with 400."""
    ada = world.worker("ada")
    world.task(everyone_workflow(world))
    for operation, sid in (("DeleteTaskQueue", world.everyone.sid), ("DeleteWorker", ada.sid)):
        with pytest.raises(SimError) as refused:
            world.call(operation, {"Sid": sid}, method="DELETE")
        assert refused.value.status == 400


def test_task_ttl_cancels_a_waiting_task(world):
    """A task still unassigned when its Timeout elapses is canceled with Twilio's TTL reason."""
    task = world.router.create_task(world.ws, attributes={}, workflow_sid=everyone_workflow(world).sid, timeout=5)
    wait_for(lambda: task.assignment_status == "canceled", world.router.clock.lock)
    assert task.reason == "Task TTL Exceeded"
    assert world.events[-1]["TaskCanceledReason"] == "Task TTL Exceeded"


def test_workflow_timeout_without_default_filter_cancels(world):
    """With no default filter, a task that runs out of targets is canceled."""
    flow = world.workflow([{"expression": "1==1", "targets": [{"queue": world.everyone.sid, "timeout": 5}]}])
    task = world.task(flow)
    wait_for(lambda: task.assignment_status == "canceled", world.router.clock.lock)
    assert task.reason == "Workflow Timeout"
    assert world.types(task.sid)[-2:] == ["workflow.timeout", "task.canceled"]


def test_max_assignment_count_cancels_the_task(world):
    """A task offered 1000 times without assignment is canceled."""
    world.worker("ada")
    flow = everyone_workflow(world)

    def reject(event):
        if event["EventType"] == "reservation.created":
            world.router.update_reservation(world.ws, event["TaskSid"], event["ReservationSid"], "rejected")

    world.router.add_listener(reject)
    task = world.task(flow)
    assert (task.assignment_status, task.reason) == ("canceled", "Max assignment count exceeded")
    assert len(task.reservations) == 1000


def test_event_fields(world):
    """Events carry a unique Sid, lowercase ResourceType and the task, worker and reservation fields."""
    world.worker("ada")
    task = world.task(everyone_workflow(world), topic="billing")
    created = next(e for e in world.events if e["EventType"] == "reservation.created")
    assert len({e["Sid"] for e in world.events}) == len(world.events)
    assert all(e["Sid"].startswith("EV") and e["ResourceType"].islower() for e in world.events)
    assert all(isinstance(value, str) for e in world.events for value in e.values())
    assert json.loads(created["TaskAttributes"]) == {"topic": "billing"}
    assert created["ResourceType"] == "reservation"
    assert created["ResourceSid"] == created["ReservationSid"] == task.reservations[0].sid
    assert created["WorkerName"] == "ada"
    assert created["TaskAssignmentStatus"] == "reserved"
    assert created["TaskQueueSid"] == world.everyone.sid
    assert created["WorkspaceName"] == "Test"
    assert created["Timestamp"].isdigit() and created["TimestampMs"].isdigit()


def test_events_filter_limits_callbacks_not_listeners(world, dispatcher):
    """Only the event types in EventsFilter are posted, while listeners still see every event."""
    world.router.update_workspace(world.ws, event_callback_url="http://127.0.0.1:9/events",
                                  events_filter="task.created, task.canceled")
    task = world.task(everyone_workflow(world))
    world.router.cancel_task(world.ws, task.sid, "test")
    assert dispatcher.wait_idle(5)
    posted = sorted(d.params["EventType"] for d in dispatcher.deliveries)
    assert posted == ["task.canceled", "task.created"]
    assert {d.url for d in dispatcher.deliveries} == {"http://127.0.0.1:9/events"}
    assert "task-queue.entered" in world.types(task.sid)


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ({"filters": [{"expression": "type == 'chat' AND", "targets": [{"queue": "Q"}]}]}, "type == 'chat' AND"),
        ({"filters": [{"expression": "1==1", "targets": [{"queue": "Q", "expression": "worker.x IN"}]}]},
         "worker.x IN"),
        ({"filters": [{"expression": "1==1", "targets": [{"queue": "WQ" + "0" * 32}]}]}, "not a TaskQueue"),
        ({"filters": [{"expression": "1==1", "targets": [{"queue": "Q", "know_worker_sid": "task.x"}]}]},
         "know_worker_sid"),
        ({"filters": {}}, "filters"),
    ],
)
def test_malformed_workflow_configuration_is_refused(world, configuration, message):
    """A workflow configuration with a bad expression, queue or key is refused with a 400 naming it."""
    text = json.dumps({"task_routing": configuration}).replace('"Q"', json.dumps(world.everyone.sid))
    with pytest.raises(SimError) as refused:
        world.call("CreateWorkflow", {}, {"FriendlyName": "bad", "Configuration": text})
    assert (refused.value.status, refused.value.code) == (400, 20001)
    assert message in refused.value.message


def test_rest_handlers_drive_a_task_end_to_end(world):
    """Through the REST handlers a task is created, found, accepted and logged in the Events API."""
    available = world.router.activity(world.ws, "Available").sid
    worker = world.call("CreateWorker", {}, {"FriendlyName": "ada", "Attributes": '{"a": 1}',
                                             "ActivitySid": available})
    world.call("CreateWorkflow", {}, {"FriendlyName": "flow", "Configuration": json.dumps(
        {"task_routing": {"filters": [], "default_filter": {"queue": world.everyone.sid}}})})
    created = world.call("CreateTask", {}, {"Attributes": '{"x": 1}', "TaskChannel": "chat", "Priority": "3"})
    sid = created.body["sid"]
    assert created.headers["ETag"] == str(world.router.task(sid).version)
    reserved = world.call("ListTask", {}, {"AssignmentStatus": ["reserved"]}, method="GET")
    reservation = world.call("ListTaskReservation", {"TaskSid": sid}, method="GET")[0]
    accepted = world.call("UpdateWorkerReservation", {"WorkerSid": worker.body["sid"], "Sid": reservation["sid"]},
                          {"ReservationStatus": "accepted"})
    events = world.call("ListEvent", {}, {"TaskSid": sid}, method="GET")
    assert isinstance(created, ApiResult) and created.status == 201
    assert [t["sid"] for t in reserved] == [sid]
    assert accepted["reservation_status"] == "accepted"
    assert accepted["url"].startswith(f"https://taskrouter.twilio.com/v1/Workspaces/{world.ws}/Workers/")
    assert events[0]["event_type"] == "reservation.accepted"
    assert events[0]["event_data"]["task_sid"] == sid
    assert world.call("FetchEvent", {"Sid": events[0]["sid"]}, method="GET") == events[0]


def test_rest_list_filters(world):
    """ListWorker and ListTask apply their availability, queue and expression filters."""
    world.worker("ada", team="a")
    world.worker("bob", team="b", available=False)
    team_b = world.router.create_task_queue(world.ws, "B", target_workers="team == 'b'")
    world.task(everyone_workflow(world), kind="x")

    def names(params):
        return [w["friendly_name"] for w in world.call("ListWorker", {}, params, method="GET")]

    assert names({"Available": "true"}) == ["ada"]
    assert names({"TaskQueueSid": team_b.sid}) == ["bob"]
    assert names({"TargetWorkersExpression": "team == 'a'"}) == ["ada"]
    assert len(world.call("ListTask", {}, {"EvaluateTaskAttributes": "kind == 'x'"}, method="GET")) == 1
    assert world.call("ListTask", {}, {"EvaluateTaskAttributes": "kind == 'y'"}, method="GET") == []
