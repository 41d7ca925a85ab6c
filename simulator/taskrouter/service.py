"""TaskRouter, simulated: the `TaskRouter` of one account, its Python API, its lock and its events.

One `TaskRouter` owns the state of every workspace as the records of `simulator.taskrouter.records`.
Its Python API (create, read, update and delete each resource, answer a reservation) is what the
other simulator modules and the scenario builder call. It moves tasks with the `Router` of
`simulator.taskrouter.routing` (where docs/twilio-behaviour.md's readings of Twilio's routing are
played), and `handlers()` from `simulator.taskrouter.rest` serves the REST operations (operation
ids of Twilio's ``twilio_taskrouter_v1`` description) on top of that same API.

Every public method and handler holds the simulator's shared lock, and the timers (reservation
timeout, workflow step timeout, task TTL) fire under it. Events are collected while an operation
changes state and published when the outermost operation ends, in order: stored for the Events
API, passed to the listeners, and posted to the workspace's EventCallbackUrl.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from typing import Any

from simulator.core import Clock, SimError, WebhookDispatcher, invalid, new_sid, not_found
from simulator.profiles import Profile
from simulator.taskrouter.records import (
    ALL_WORKERS,
    BASE_URL,
    DEFAULT_RESERVATION_TIMEOUT,
    DEFAULT_TASK_TTL,
    HOLDING,
    MAX_PRIORITY,
    MAX_RESERVATION_TIMEOUT,
    MAX_RESERVED_WORKERS,
    MAX_TASK_TTL,
    Activity,
    Event,
    Reservation,
    Space,
    Task,
    TaskChannel,
    TaskQueue,
    Worker,
    WorkerChannel,
    Workflow,
    Workspace,
    check_version,
    decode_attributes,
    parse_expression,
)
from simulator.taskrouter.rest import RestHandlers
from simulator.taskrouter.routing import Router, parse_configuration

log = logging.getLogger(__name__)

# What a new workspace starts with, like Twilio's: Offline is the default and the timeout activity.
DEFAULT_ACTIVITIES = (("Offline", False), ("Available", True), ("Unavailable", False), ("Break", False))
DEFAULT_TASK_CHANNELS = (
    ("default", "Default"),
    ("voice", "Voice"),
    ("chat", "Chat"),
    ("sms", "SMS"),
    ("video", "Video"),
    ("email", "Email"),
)


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a public method as one operation: under the lock, events published at its end."""

    @functools.wraps(method)
    def wrapper(self: TaskRouter, *args: Any, **kwargs: Any) -> Any:
        with self._operation():
            return method(self, *args, **kwargs)

    return wrapper


# --- The simulator ------------------------------------------------------------------------------


class TaskRouter(Router, RestHandlers):
    """The simulated TaskRouter of one account; it routes as `Router` does and serves `RestHandlers`' handlers."""

    def __init__(self, account_sid: str, clock: Clock, dispatcher: WebhookDispatcher, profile: Profile | None = None):
        self.account_sid = account_sid
        self.clock = clock
        self.dispatcher = dispatcher
        self.profile = profile or Profile()
        self._spaces: dict[str, Space] = {}
        self._tasks: dict[str, Task] = {}
        self._workers: dict[str, Worker] = {}
        self._reservations: dict[str, Reservation] = {}
        self._listeners: list[Callable[[dict[str, str]], None]] = []
        self._outbox: deque[Event] = deque()
        self._depth = 0
        self._offers = itertools.count()

    # --- Operations, timers and events ---

    @contextmanager
    def _operation(self) -> Iterable[None]:
        with self.clock.lock:
            self._depth += 1
            try:
                yield
            finally:
                try:
                    # Only the outermost operation publishes, so a listener that calls back into
                    # the API appends its events behind the ones still being published.
                    if self._depth == 1:
                        self._publish()
                finally:
                    self._depth -= 1

    def _after(self, seconds: float, callback: Callable[..., None], *args: Any) -> Any:
        def fire() -> None:
            with self._operation():
                callback(*args)

        return self.clock.call_later(seconds, fire)

    def _elapsed(self, since: float) -> float:
        """Simulated seconds since clock time ``since``."""
        return (self.clock.now() - since) / self.clock.time_scale

    def add_listener(self, listener: Callable[[dict[str, str]], None]) -> None:
        """Call ``listener`` with the form fields of every event, under the lock, in order.

        Listeners see every event, whether or not the workspace has a callback URL or filters it.
        """
        with self.clock.lock:
            self._listeners.append(listener)

    def _publish(self) -> None:
        while self._outbox:
            event = self._outbox.popleft()
            for listener in tuple(self._listeners):
                try:
                    listener(dict(event.fields))
                except Exception:  # one broken listener must not stop the simulated world
                    log.exception("TaskRouter event listener failed on %s", event.event_type)
            space = self._spaces.get(event.workspace_sid)
            if space and space.workspace.event_callback_url and space.workspace.publishes(event.event_type):
                self.dispatcher.send(space.workspace.event_callback_url, event.fields)

    def _emit(
        self,
        space: Space,
        event_type: str,
        resource_type: str,
        resource_sid: str,
        resource_url: str,
        description: str,
        data: Mapping[str, str],
    ) -> None:
        """Record an event; it is published when the current operation ends."""
        now = self.clock.now()
        workspace = space.workspace
        sid = new_sid("EV")
        fields = {
            "Sid": sid,
            "EventType": event_type,
            "AccountSid": self.account_sid,
            "WorkspaceSid": workspace.sid,
            "WorkspaceName": workspace.friendly_name,
            "EventDescription": description,
            # Real payloads carry the resource type in lowercase, whatever the docs show.
            "ResourceType": resource_type,
            "ResourceSid": resource_sid,
            "Timestamp": str(int(now)),
            "TimestampMs": str(int(now * 1000)),
            **{name: value for name, value in data.items() if value is not None},
        }
        event = Event(sid, workspace.sid, self.account_sid, event_type, resource_type, resource_sid, resource_url,
                      description, now, fields)
        space.events.append(event)
        self._outbox.append(event)

    def _task_fields(self, task: Task) -> dict[str, str]:
        fields = {
            "TaskSid": task.sid,
            "TaskAttributes": json.dumps(task.attributes),
            "TaskAge": str(task.age),
            "TaskPriority": str(task.priority),
            "TaskAssignmentStatus": task.assignment_status,
            "TaskChannelSid": task.task_channel.sid,
            "TaskChannelUniqueName": task.task_channel.unique_name,
            "TaskVersion": str(task.version),
        }
        if task.queue:
            fields |= {
                "TaskQueueSid": task.queue.sid,
                "TaskQueueName": task.queue.friendly_name,
                "TaskQueueTargetExpression": task.queue.target_workers,
            }
        if task.workflow:
            fields |= {"WorkflowSid": task.workflow.sid, "WorkflowName": task.workflow.friendly_name}
        if task.reason and task.assignment_status == "canceled":
            fields["TaskCanceledReason"] = task.reason
        if task.reason and task.assignment_status == "completed":
            fields["TaskCompletedReason"] = task.reason
        return fields

    @staticmethod
    def _worker_fields(worker: Worker) -> dict[str, str]:
        return {
            "WorkerSid": worker.sid,
            "WorkerName": worker.friendly_name,
            "WorkerAttributes": json.dumps(worker.attributes),
            "WorkerActivitySid": worker.activity.sid,
            "WorkerActivityName": worker.activity.friendly_name,
            "WorkerVersion": str(worker.version),
        }

    def _task_event(self, task: Task, event_type: str, description: str, **extra: str) -> None:
        # Workflow and queue movements are about the task too: their resource is the task.
        self._emit(self._space(task.workspace_sid), event_type, "task", task.sid, task.url, description,
                   self._task_fields(task) | extra)

    def _reservation_event(self, reservation: Reservation, event_type: str, description: str) -> None:
        data = self._task_fields(reservation.task) | self._worker_fields(reservation.worker)
        data |= {"ReservationSid": reservation.sid, "ReservationVersion": str(reservation.version)}
        if reservation.queue:
            data |= {"TaskQueueSid": reservation.queue.sid, "TaskQueueName": reservation.queue.friendly_name}
        url = f"{reservation.task.url}/Reservations/{reservation.sid}"
        self._emit(self._space(reservation.workspace_sid), event_type, "reservation", reservation.sid, url,
                   description, data)

    def _worker_event(self, worker: Worker, event_type: str, description: str, **extra: str) -> None:
        self._emit(self._space(worker.workspace_sid), event_type, "worker", worker.sid, worker.url, description,
                   self._worker_fields(worker) | extra)

    # --- Lookups ---

    def _space(self, workspace_sid: str) -> Space:
        space = self._spaces.get(workspace_sid)
        if space is None:
            raise not_found(f"/v1/Workspaces/{workspace_sid}")
        return space

    @staticmethod
    def _find(items: Mapping[str, Any], sid: str, path: str) -> Any:
        if sid not in items:
            raise not_found(path)
        return items[sid]

    def _task_in(self, space: Space, task_sid: str) -> Task:
        return self._find(space.tasks, task_sid, f"/v1/Workspaces/{space.workspace.sid}/Tasks/{task_sid}")

    def _worker_in(self, space: Space, worker_sid: str) -> Worker:
        return self._find(space.workers, worker_sid, f"/v1/Workspaces/{space.workspace.sid}/Workers/{worker_sid}")

    def _activity_param(self, space: Space, sid: str, name: str) -> Activity:
        # An unknown sid in a parameter is a bad request, not a missing resource.
        if sid not in space.activities:
            raise invalid(f"{name} {sid} is not an Activity of workspace {space.workspace.sid}")
        return space.activities[sid]

    def _channel_param(self, space: Space, name_or_sid: str) -> TaskChannel:
        try:
            return self._find_channel(space, name_or_sid)
        except SimError:
            workspace = space.workspace.sid
            raise invalid(f"TaskChannel {name_or_sid} is not a TaskChannel of workspace {workspace}") from None

    @_locked
    def workspace(self, workspace_sid: str) -> Workspace:
        """The workspace; 404 when unknown."""
        return self._space(workspace_sid).workspace

    @_locked
    def task(self, task_sid: str) -> Task:
        """The task, in whichever workspace; 404 when unknown (or deleted)."""
        return self._find(self._tasks, task_sid, f"/v1/Workspaces/-/Tasks/{task_sid}")

    @_locked
    def worker(self, worker_sid: str) -> Worker:
        """The worker, in whichever workspace; 404 when unknown."""
        return self._find(self._workers, worker_sid, f"/v1/Workspaces/-/Workers/{worker_sid}")

    @_locked
    def reservation(self, reservation_sid: str) -> Reservation:
        """The reservation, in whichever workspace; 404 when unknown."""
        return self._find(self._reservations, reservation_sid, f"/v1/Workspaces/-/Reservations/{reservation_sid}")

    @_locked
    def activity(self, workspace_sid: str, name_or_sid: str) -> Activity:
        """The workspace's activity by sid or friendly name (e.g. ``"Available"``); 404 when unknown."""
        for activity in self._space(workspace_sid).activities.values():
            if name_or_sid in (activity.sid, activity.friendly_name):
                return activity
        raise not_found(f"/v1/Workspaces/{workspace_sid}/Activities/{name_or_sid}")

    @_locked
    def events(self, workspace_sid: str) -> list[Event]:
        """Every event of the workspace so far, oldest first."""
        return list(self._space(workspace_sid).events)

    # --- Workspaces, activities, task channels ---

    @_locked
    def create_workspace(
        self,
        friendly_name: str,
        *,
        event_callback_url: str | None = None,
        events_filter: str | None = None,
        multi_task_enabled: bool = True,
        prioritize_queue_order: str = "FIFO",
        template: str | None = None,
    ) -> Workspace:
        """Create a workspace with Twilio's default activities and task channels.

        ``template="FIFO"`` also creates a queue of every worker and a workflow to it, as Twilio does.
        """
        now = self.clock.now()
        sid = new_sid("WS")
        activities = [
            Activity(new_sid("WA"), sid, self.account_sid, name, available, now, now)
            for name, available in DEFAULT_ACTIVITIES
        ]
        workspace = Workspace(
            sid=sid,
            account_sid=self.account_sid,
            friendly_name=friendly_name,
            default_activity=activities[0],
            timeout_activity=activities[0],
            date_created=now,
            date_updated=now,
            event_callback_url=event_callback_url or None,
            events_filter=events_filter or None,
            multi_task_enabled=multi_task_enabled,
            prioritize_queue_order=prioritize_queue_order,
        )
        space = Space(workspace, activities={activity.sid: activity for activity in activities})
        for unique_name, channel_name in DEFAULT_TASK_CHANNELS:
            channel = TaskChannel(new_sid("TC"), sid, self.account_sid, unique_name, channel_name, now, now)
            space.task_channels[channel.sid] = channel
        self._spaces[sid] = space
        if template == "FIFO":
            queue = self.create_task_queue(sid, "Sample Queue")
            configuration = {"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}}
            self.create_workflow(sid, "Default Fifo Workflow", configuration)
        return workspace

    @_locked
    def update_workspace(
        self,
        workspace_sid: str,
        *,
        friendly_name: str | None = None,
        event_callback_url: str | None = None,
        events_filter: str | None = None,
        default_activity_sid: str | None = None,
        timeout_activity_sid: str | None = None,
        multi_task_enabled: bool | None = None,
        prioritize_queue_order: str | None = None,
    ) -> Workspace:
        """Change a workspace's settings; None leaves a setting alone, ``""`` clears the URL or filter."""
        space = self._space(workspace_sid)
        workspace = space.workspace
        default = (self._activity_param(space, default_activity_sid, "DefaultActivitySid")
                   if default_activity_sid else None)
        timeout = (self._activity_param(space, timeout_activity_sid, "TimeoutActivitySid")
                   if timeout_activity_sid else None)
        if friendly_name is not None:
            workspace.friendly_name = friendly_name
        if event_callback_url is not None:
            workspace.event_callback_url = event_callback_url or None
        if events_filter is not None:
            workspace.events_filter = events_filter or None
        if default:
            workspace.default_activity = default
        if timeout:
            workspace.timeout_activity = timeout
        if multi_task_enabled is not None:
            workspace.multi_task_enabled = multi_task_enabled
        if prioritize_queue_order is not None:
            workspace.prioritize_queue_order = prioritize_queue_order
        workspace.date_updated = self.clock.now()
        return workspace

    @_locked
    def delete_workspace(self, workspace_sid: str) -> None:
        """Delete a workspace and everything in it, stopping its timers; no events."""
        space = self._space(workspace_sid)
        for task in space.tasks.values():
            self._stop_timers(task)
            for reservation in task.reservations:
                if reservation.timer:
                    reservation.timer.cancel()
            self._tasks.pop(task.sid, None)
        for worker in space.workers.values():
            self._workers.pop(worker.sid, None)
            for reservation in worker.reservations:
                self._reservations.pop(reservation.sid, None)
        del self._spaces[workspace_sid]

    @_locked
    def create_activity(self, workspace_sid: str, friendly_name: str, *, available: bool = False) -> Activity:
        """Create an activity (``activity.created``)."""
        space = self._space(workspace_sid)
        now = self.clock.now()
        activity = Activity(new_sid("WA"), workspace_sid, self.account_sid, friendly_name, available, now, now)
        space.activities[activity.sid] = activity
        self._emit(space, "activity.created", "activity", activity.sid, activity.url,
                   f"Activity {friendly_name} created",
                   {"ActivitySid": activity.sid, "ActivityName": friendly_name,
                    "ActivityAvailable": json.dumps(available)})
        return activity

    @_locked
    def create_task_channel(
        self, workspace_sid: str, unique_name: str, *, friendly_name: str | None = None,
        channel_optimized_routing: bool = False,
    ) -> TaskChannel:
        """Create a task channel, and a worker channel of capacity 1 for it on every worker."""
        space = self._space(workspace_sid)
        if any(channel.unique_name == unique_name for channel in space.task_channels.values()):
            raise invalid(f"A TaskChannel with unique name {unique_name} already exists")
        now = self.clock.now()
        channel = TaskChannel(new_sid("TC"), workspace_sid, self.account_sid, unique_name,
                              friendly_name or unique_name, now, now, channel_optimized_routing)
        space.task_channels[channel.sid] = channel
        for worker in space.workers.values():
            self._add_worker_channel(worker, channel)
        self._emit(space, "task-channel.created", "taskchannel", channel.sid, channel.url,
                   f"TaskChannel {unique_name} created",
                   {"TaskChannelSid": channel.sid, "TaskChannelUniqueName": unique_name})
        return channel

    @_locked
    def update_task_channel(
        self, workspace_sid: str, channel: str, *, friendly_name: str | None = None,
        channel_optimized_routing: bool | None = None,
    ) -> TaskChannel:
        """Rename a task channel or switch its channel-optimized routing (``task-channel.updated``)."""
        space = self._space(workspace_sid)
        found = self._find_channel(space, channel)
        if friendly_name is not None:
            found.friendly_name = friendly_name
        if channel_optimized_routing is not None:
            found.channel_optimized_routing = channel_optimized_routing
        found.date_updated = self.clock.now()
        self._emit(space, "task-channel.updated", "taskchannel", found.sid, found.url,
                   f"TaskChannel {found.unique_name} updated",
                   {"TaskChannelSid": found.sid, "TaskChannelUniqueName": found.unique_name})
        return found

    @_locked
    def delete_task_channel(self, workspace_sid: str, channel: str) -> None:
        """Delete a task channel no open task uses (else 400) (``task-channel.deleted``)."""
        space = self._space(workspace_sid)
        found = self._find_channel(space, channel)
        if any(task.task_channel is found and task.assignment_status not in ("canceled", "completed")
               for task in space.tasks.values()):
            raise invalid(f"TaskChannel {found.unique_name} has open tasks and cannot be deleted")
        del space.task_channels[found.sid]
        for worker in space.workers.values():
            worker.channels.pop(found.sid, None)
        self._emit(space, "task-channel.deleted", "taskchannel", found.sid, found.url,
                   f"TaskChannel {found.unique_name} deleted",
                   {"TaskChannelSid": found.sid, "TaskChannelUniqueName": found.unique_name})

    def _find_channel(self, space: Space, name_or_sid: str) -> TaskChannel:
        for channel in space.task_channels.values():
            if name_or_sid in (channel.sid, channel.unique_name):
                return channel
        raise not_found(f"/v1/Workspaces/{space.workspace.sid}/TaskChannels/{name_or_sid}")

    def _add_worker_channel(self, worker: Worker, channel: TaskChannel) -> None:
        now = self.clock.now()
        worker.channels[channel.sid] = WorkerChannel(
            new_sid("WC"), worker.sid, worker.workspace_sid, self.account_sid, channel, now, now
        )

    # --- Workers ---

    @_locked
    def create_worker(
        self, workspace_sid: str, friendly_name: str, *, attributes: str | Mapping[str, Any] | None = None,
        activity_sid: str | None = None,
    ) -> Worker:
        """Create a worker in ``activity_sid`` (else the workspace's default activity) (``worker.created``)."""
        space = self._space(workspace_sid)
        if any(worker.friendly_name == friendly_name for worker in space.workers.values()):
            raise invalid(f"A Worker with friendly name {friendly_name} already exists")
        decoded = decode_attributes(attributes if attributes is not None else {})
        activity = (self._activity_param(space, activity_sid, "ActivitySid") if activity_sid
                    else space.workspace.default_activity)
        now = self.clock.now()
        worker = Worker(new_sid("WK"), workspace_sid, self.account_sid, friendly_name, decoded, activity,
                        now, now, now)
        for channel in space.task_channels.values():
            self._add_worker_channel(worker, channel)
        space.workers[worker.sid] = worker
        self._workers[worker.sid] = worker
        self._worker_event(worker, "worker.created", f"Worker {friendly_name} created")
        if worker.available:
            self._dispatch(space)
        return worker

    @_locked
    def update_worker(
        self,
        workspace_sid: str,
        worker_sid: str,
        *,
        activity_sid: str | None = None,
        attributes: str | Mapping[str, Any] | None = None,
        friendly_name: str | None = None,
        reject_pending_reservations: bool = False,
        if_match: str | None = None,
    ) -> Worker:
        """Change a worker's activity, attributes or name; pending tasks are then offered again.

        With ``reject_pending_reservations`` and an unavailable activity, the worker's pending
        reservations are rejected; without it they stay pending (and may still time out).
        """
        space = self._space(workspace_sid)
        worker = self._worker_in(space, worker_sid)
        check_version(worker.version, if_match, worker.url)
        activity = self._activity_param(space, activity_sid, "ActivitySid") if activity_sid else None
        decoded = None if attributes is None else decode_attributes(attributes)
        if friendly_name is not None and friendly_name != worker.friendly_name:
            worker.friendly_name = friendly_name
            self._touch_worker(worker)
        if decoded is not None and decoded != worker.attributes:
            worker.attributes = decoded
            self._touch_worker(worker)
            self._worker_event(worker, "worker.attributes.update", f"Worker {worker.friendly_name} attributes updated")
        if activity:
            self._set_activity(worker, activity)
            if reject_pending_reservations and not activity.available:
                for reservation in list(worker.reservations):
                    if reservation.status == "pending":
                        self._reject(reservation, None)
        self._dispatch(space)
        return worker

    @_locked
    def delete_worker(self, workspace_sid: str, worker_sid: str, *, if_match: str | None = None) -> None:
        """Delete a worker that holds no reservation (else 400) (``worker.deleted``)."""
        space = self._space(workspace_sid)
        worker = self._worker_in(space, worker_sid)
        check_version(worker.version, if_match, worker.url)
        if any(channel.holding for channel in worker.channels.values()):
            raise invalid(f"Worker {worker.friendly_name} has reservations in progress and cannot be deleted")
        self._worker_event(worker, "worker.deleted", f"Worker {worker.friendly_name} deleted")
        del space.workers[worker_sid]
        self._workers.pop(worker_sid, None)

    @_locked
    def delete_activity(self, workspace_sid: str, activity_sid: str) -> None:
        """Delete an activity that is neither a workspace default nor any worker's (else 400)."""
        space = self._space(workspace_sid)
        activity = self._find(space.activities, activity_sid,
                              f"/v1/Workspaces/{workspace_sid}/Activities/{activity_sid}")
        workspace = space.workspace
        if activity in (workspace.default_activity, workspace.timeout_activity) or any(
                worker.activity is activity for worker in space.workers.values()):
            raise invalid(f"Activity {activity.friendly_name} is in use and cannot be deleted")
        del space.activities[activity_sid]
        self._emit(space, "activity.deleted", "activity", activity.sid, activity.url,
                   f"Activity {activity.friendly_name} deleted",
                   {"ActivitySid": activity.sid, "ActivityName": activity.friendly_name,
                    "ActivityAvailable": json.dumps(activity.available)})

    def _touch_worker(self, worker: Worker) -> None:
        worker.version += 1
        worker.date_updated = self.clock.now()

    def _set_activity(self, worker: Worker, activity: Activity) -> None:
        """Move a worker to ``activity`` (``worker.activity.update``); callers dispatch afterwards."""
        if activity is worker.activity:
            return
        now = self.clock.now()
        previous, since = worker.activity, worker.date_status_changed
        worker.activity = activity
        worker.date_status_changed = now
        self._touch_worker(worker)
        self._worker_event(
            worker,
            "worker.activity.update",
            f"Worker {worker.friendly_name} updated to {activity.friendly_name} Activity",
            WorkerPreviousActivitySid=previous.sid,
            WorkerPreviousActivityName=previous.friendly_name,
            WorkerTimeInPreviousActivity=str(int(now - since)),
            WorkerTimeInPreviousActivityMs=str(int((now - since) * 1000)),
        )

    @_locked
    def update_worker_channel(
        self, workspace_sid: str, worker_sid: str, channel: str, *, capacity: int | None = None,
        available: bool | None = None,
    ) -> WorkerChannel:
        """Set a worker channel's capacity or switch it on or off; ``channel`` is a sid or unique name."""
        space = self._space(workspace_sid)
        worker = self._worker_in(space, worker_sid)
        found = worker.channel(channel)
        if found is None:
            raise not_found(f"{worker.url.removeprefix(BASE_URL)}/Channels/{channel}")
        if capacity is not None and capacity < 0:
            raise invalid("Capacity must not be negative")
        channel_fields = {"TaskChannelSid": found.task_channel.sid,
                          "TaskChannelUniqueName": found.task_channel.unique_name}
        if capacity is not None and capacity != found.configured_capacity:
            previous = found.configured_capacity
            found.configured_capacity = capacity
            found.date_updated = self.clock.now()
            self._worker_event(worker, "worker.capacity.update", f"Worker {worker.friendly_name} capacity updated",
                               WorkerChannelPreviousCapacity=str(previous),
                               WorkerChannelAvailableCapacity=str(max(capacity - len(found.holding), 0)),
                               WorkerChannelTaskCount=str(found.assigned_tasks), **channel_fields)
        if available is not None and available != found.available:
            found.available = available
            found.date_updated = self.clock.now()
            self._worker_event(worker, "worker.channel.availability.update",
                               f"Worker {worker.friendly_name} channel availability updated",
                               WorkerChannelAvailable=json.dumps(available), **channel_fields)
        self._dispatch(space)
        return found

    # --- Queues and workflows ---

    @_locked
    def create_task_queue(
        self,
        workspace_sid: str,
        friendly_name: str,
        *,
        target_workers: str = ALL_WORKERS,
        task_order: str = "FIFO",
        max_reserved_workers: int = 1,
        reservation_activity_sid: str | None = None,
        assignment_activity_sid: str | None = None,
    ) -> TaskQueue:
        """Create a task queue (``task-queue.created``).

        A malformed ``target_workers`` or a ``max_reserved_workers`` outside 1 to 50 is refused with a 400.
        """
        space = self._space(workspace_sid)
        expression = parse_expression(target_workers, "worker", "Invalid TargetWorkers")
        self._check_max_reserved_workers(max_reserved_workers)
        now = self.clock.now()
        reservation_activity = (self._activity_param(space, reservation_activity_sid, "ReservationActivitySid")
                                if reservation_activity_sid else None)
        assignment_activity = (self._activity_param(space, assignment_activity_sid, "AssignmentActivitySid")
                               if assignment_activity_sid else None)
        queue = TaskQueue(new_sid("WQ"), workspace_sid, self.account_sid, friendly_name, target_workers, expression,
                          now, now, task_order, max_reserved_workers, reservation_activity, assignment_activity)
        space.queues[queue.sid] = queue
        self._emit(space, "task-queue.created", "taskqueue", queue.sid, queue.url,
                   f"TaskQueue {friendly_name} created",
                   {"TaskQueueSid": queue.sid, "TaskQueueName": friendly_name,
                    "TaskQueueTargetExpression": target_workers})
        return queue

    @_locked
    def update_task_queue(
        self,
        workspace_sid: str,
        queue_sid: str,
        *,
        friendly_name: str | None = None,
        target_workers: str | None = None,
        task_order: str | None = None,
        max_reserved_workers: int | None = None,
        reservation_activity_sid: str | None = None,
        assignment_activity_sid: str | None = None,
    ) -> TaskQueue:
        """Change a task queue (``max_reserved_workers`` 1 to 50, else 400).

        New ``target_workers`` (``task-queue.expression.updated``) or more ``max_reserved_workers``
        offer the waiting tasks again.
        """
        space = self._space(workspace_sid)
        queue = self._find(space.queues, queue_sid, f"/v1/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}")
        expression = parse_expression(target_workers, "worker", "Invalid TargetWorkers") if target_workers else None
        if max_reserved_workers is not None:
            self._check_max_reserved_workers(max_reserved_workers)
        reservation_activity = (self._activity_param(space, reservation_activity_sid, "ReservationActivitySid")
                                if reservation_activity_sid else None)
        assignment_activity = (self._activity_param(space, assignment_activity_sid, "AssignmentActivitySid")
                               if assignment_activity_sid else None)
        if friendly_name is not None:
            queue.friendly_name = friendly_name
        if task_order is not None:
            queue.task_order = task_order
        more_reserved = max_reserved_workers is not None and max_reserved_workers > queue.max_reserved_workers
        if max_reserved_workers is not None:
            queue.max_reserved_workers = max_reserved_workers
        if reservation_activity:
            queue.reservation_activity = reservation_activity
        if assignment_activity:
            queue.assignment_activity = assignment_activity
        queue.date_updated = self.clock.now()
        retargeted = expression is not None and target_workers != queue.target_workers
        if retargeted:
            queue.target_workers, queue.target_expression = target_workers, expression
            self._emit(space, "task-queue.expression.updated", "taskqueue", queue.sid, queue.url,
                       f"TaskQueue {queue.friendly_name} target workers updated",
                       {"TaskQueueSid": queue.sid, "TaskQueueName": queue.friendly_name,
                        "TaskQueueTargetExpression": target_workers})
        if retargeted or more_reserved:
            self._dispatch(space)
        return queue

    @staticmethod
    def _check_max_reserved_workers(count: int) -> None:
        if not 1 <= count <= MAX_RESERVED_WORKERS:
            raise invalid(f"MaxReservedWorkers must be between 1 and {MAX_RESERVED_WORKERS}")

    @_locked
    def delete_task_queue(self, workspace_sid: str, queue_sid: str) -> None:
        """Delete a queue no workflow routes to (else 400) (``task-queue.deleted``)."""
        space = self._space(workspace_sid)
        queue = self._find(space.queues, queue_sid, f"/v1/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}")
        for workflow in space.workflows.values():
            routing = workflow.routing
            filters = routing.filters + ((routing.default,) if routing.default else ())
            if any(target.queue is queue for each in filters for target in each.targets):
                raise invalid(f"TaskQueue {queue.friendly_name} is used by Workflow {workflow.friendly_name}")
        del space.queues[queue_sid]
        self._emit(space, "task-queue.deleted", "taskqueue", queue.sid, queue.url,
                   f"TaskQueue {queue.friendly_name} deleted",
                   {"TaskQueueSid": queue.sid, "TaskQueueName": queue.friendly_name})

    @_locked
    def create_workflow(
        self,
        workspace_sid: str,
        friendly_name: str,
        configuration: str | Mapping[str, Any],
        *,
        task_reservation_timeout: int = DEFAULT_RESERVATION_TIMEOUT,
        assignment_callback_url: str | None = None,
        fallback_assignment_callback_url: str | None = None,
    ) -> Workflow:
        """Create a workflow (``workflow.created``); a malformed configuration is refused with a 400.

        ``configuration`` is the JSON text, or a mapping that is encoded to it.
        """
        space = self._space(workspace_sid)
        text = configuration if isinstance(configuration, str) else json.dumps(configuration)
        routing = parse_configuration(text, space.queues)
        self._check_reservation_timeout(task_reservation_timeout)
        now = self.clock.now()
        workflow = Workflow(new_sid("WW"), workspace_sid, self.account_sid, friendly_name, text, routing, now, now,
                            task_reservation_timeout, assignment_callback_url, fallback_assignment_callback_url)
        space.workflows[workflow.sid] = workflow
        self._emit(space, "workflow.created", "workflow", workflow.sid, workflow.url,
                   f"Workflow {friendly_name} created",
                   {"WorkflowSid": workflow.sid, "WorkflowName": friendly_name})
        return workflow

    @staticmethod
    def _check_reservation_timeout(seconds: int) -> None:
        if not 1 <= seconds <= MAX_RESERVATION_TIMEOUT:
            raise invalid(f"TaskReservationTimeout must be between 1 and {MAX_RESERVATION_TIMEOUT} seconds")

    @_locked
    def update_workflow(
        self,
        workspace_sid: str,
        workflow_sid: str,
        *,
        friendly_name: str | None = None,
        configuration: str | Mapping[str, Any] | None = None,
        task_reservation_timeout: int | None = None,
        assignment_callback_url: str | None = None,
        fallback_assignment_callback_url: str | None = None,
        re_evaluate_tasks: bool = False,
    ) -> Workflow:
        """Change a workflow (``workflow.updated``).

        Tasks keep the configuration they entered with until they are re-driven; with
        ``re_evaluate_tasks`` the workflow's pending tasks are re-driven at once.
        """
        space = self._space(workspace_sid)
        workflow = self._find(space.workflows, workflow_sid, f"/v1/Workspaces/{workspace_sid}/Workflows/{workflow_sid}")
        text = None
        if configuration is not None:
            text = configuration if isinstance(configuration, str) else json.dumps(configuration)
            routing = parse_configuration(text, space.queues)
        if task_reservation_timeout is not None:
            self._check_reservation_timeout(task_reservation_timeout)
            workflow.task_reservation_timeout = task_reservation_timeout
        if text is not None:
            workflow.configuration, workflow.routing = text, routing
        if friendly_name is not None:
            workflow.friendly_name = friendly_name
        if assignment_callback_url is not None:
            workflow.assignment_callback_url = assignment_callback_url or None
        if fallback_assignment_callback_url is not None:
            workflow.fallback_assignment_callback_url = fallback_assignment_callback_url or None
        workflow.date_updated = self.clock.now()
        self._emit(space, "workflow.updated", "workflow", workflow.sid, workflow.url,
                   f"Workflow {workflow.friendly_name} updated",
                   {"WorkflowSid": workflow.sid, "WorkflowName": workflow.friendly_name})
        if re_evaluate_tasks:
            for task in list(space.pending.values()):
                if task.workflow is workflow:
                    self._drive(task)
        return workflow

    @_locked
    def delete_workflow(self, workspace_sid: str, workflow_sid: str) -> None:
        """Delete a workflow (``workflow.deleted``); its tasks keep routing with the configuration they have."""
        space = self._space(workspace_sid)
        workflow = self._find(space.workflows, workflow_sid, f"/v1/Workspaces/{workspace_sid}/Workflows/{workflow_sid}")
        del space.workflows[workflow_sid]
        self._emit(space, "workflow.deleted", "workflow", workflow.sid, workflow.url,
                   f"Workflow {workflow.friendly_name} deleted",
                   {"WorkflowSid": workflow.sid, "WorkflowName": workflow.friendly_name})

    # --- Tasks ---

    @_locked
    def create_task(
        self,
        workspace_sid: str,
        *,
        attributes: str | Mapping[str, Any],
        workflow_sid: str | None = None,
        task_channel: str = "default",
        priority: int | None = 0,
        timeout: int | None = None,
        task_queue_sid: str | None = None,
        routing_target: str | None = None,
        ignore_capacity: bool | None = None,
    ) -> Task:
        """Create a task and route it (``task.created``, then its routing events).

        Where it is routed, first that applies: ``routing_target`` (a worker, queue or workflow sid),
        ``workflow_sid``, ``task_queue_sid`` (straight into that queue), else the workspace's only
        workflow. With a worker target, ``task_queue_sid`` only names the queue the task counts in.
        ``ignore_capacity`` applies to a worker target only and defaults to true there, as Twilio
        documents. ``timeout`` is the TTL before assignment (default 86400 s).
        """
        space = self._space(workspace_sid)
        decoded = decode_attributes(attributes)
        channel = self._channel_param(space, task_channel)
        ttl = DEFAULT_TASK_TTL if timeout is None else timeout
        if not 1 <= ttl <= MAX_TASK_TTL:
            raise invalid(f"Timeout must be between 1 and {MAX_TASK_TTL} seconds")
        priority = priority or 0
        if not 0 <= priority <= MAX_PRIORITY:
            raise invalid(f"Priority must be between 0 and {MAX_PRIORITY}")
        workflow, direct, ignore, queue = self._routing_for(space, workflow_sid, task_queue_sid, routing_target,
                                                            ignore_capacity)
        now = self.clock.now()
        task = Task(new_sid("WT"), workspace_sid, self.account_sid, decoded, channel, workflow, priority, ttl, now, now,
                    time_scale=self.clock.time_scale, queue=queue, routing_target=routing_target,
                    ignore_capacity=ignore, direct_routing=direct)
        space.tasks[task.sid] = task
        space.pending[task.sid] = task
        self._tasks[task.sid] = task
        task.ttl_timer = self._after(ttl, self._ttl_expired, task)
        self._task_event(task, "task.created", f"Task {task.sid} created")
        self._drive(task)
        return task

    @_locked
    def update_task(
        self,
        workspace_sid: str,
        task_sid: str,
        *,
        attributes: str | Mapping[str, Any] | None = None,
        assignment_status: str | None = None,
        reason: str | None = None,
        priority: int | None = None,
        task_channel: str | None = None,
        if_match: str | None = None,
    ) -> Task:
        """Update a task as Twilio's UpdateTask does.

        New attributes (``task.updated``) re-drive a pending task through its workflow. An
        ``assignment_status`` of ``canceled`` (from pending or reserved), ``wrapping`` (from
        assigned) or ``completed`` (from assigned or wrapping) moves it on; any other move is a
        400. ``if_match`` must be the current version (ETag), else 412. Nothing changes when
        the request is refused.
        """
        space = self._space(workspace_sid)
        task = self._task_in(space, task_sid)
        check_version(task.version, if_match, task.url)
        decoded = None if attributes is None else decode_attributes(attributes)
        channel = self._channel_param(space, task_channel) if task_channel else None
        if priority is not None and not 0 <= priority <= MAX_PRIORITY:
            raise invalid(f"Priority must be between 0 and {MAX_PRIORITY}")
        if assignment_status is not None:
            self._check_transition(task, assignment_status)
        changed = False
        if decoded is not None:
            task.attributes, changed = decoded, True
        if priority is not None and priority != task.priority:
            task.priority, changed = priority, True
        if channel and channel is not task.task_channel:
            task.task_channel, changed = channel, True
        if changed:
            self._touch_task(task)
            self._task_event(task, "task.updated", f"Task {task.sid} updated")
        if assignment_status is not None:
            self._move_task(task, assignment_status, reason)
        elif decoded is not None and task.assignment_status == "pending":
            # "When a pending Task's attributes are updated, the Task will be re-driven through the
            # Workflow" (TaskRouter Task docs).
            self._drive(task)
        elif changed and task.assignment_status == "pending":
            self._offer(task)
        return task

    @_locked
    def delete_task(self, workspace_sid: str, task_sid: str, *, if_match: str | None = None) -> None:
        """Delete a task in any state (``task.deleted``); its live reservations are canceled."""
        space = self._space(workspace_sid)
        task = self._task_in(space, task_sid)
        check_version(task.version, if_match, task.url)
        self._stop_timers(task)
        for reservation in task.reservations:
            if reservation.status in HOLDING:
                self._set_reservation_status(reservation, "canceled")
                self._reservation_event(reservation, "reservation.canceled", f"Reservation {reservation.sid} canceled")
        self._task_event(task, "task.deleted", f"Task {task.sid} deleted")
        del space.tasks[task_sid]
        space.pending.pop(task_sid, None)
        space.reserved.pop(task_sid, None)
        self._tasks.pop(task_sid, None)
        self._dispatch(space)

    @_locked
    def cancel_task(self, workspace_sid: str, task_sid: str, reason: str) -> Task:
        """Cancel a pending or reserved task (else 400)."""
        return self.update_task(workspace_sid, task_sid, assignment_status="canceled", reason=reason)

    @_locked
    def wrapup_task(self, workspace_sid: str, task_sid: str, reason: str) -> Task:
        """Move an assigned task to wrapping (else 400)."""
        return self.update_task(workspace_sid, task_sid, assignment_status="wrapping", reason=reason)

    @_locked
    def complete_task(self, workspace_sid: str, task_sid: str, reason: str) -> Task:
        """Complete an assigned or wrapping task (else 400)."""
        return self.update_task(workspace_sid, task_sid, assignment_status="completed", reason=reason)

    # --- Reservations ---

    @_locked
    def update_reservation(
        self,
        workspace_sid: str,
        task_sid: str,
        reservation_sid: str,
        status: str,
        *,
        worker_activity_sid: str | None = None,
        if_match: str | None = None,
    ) -> Reservation:
        """Answer a reservation as UpdateTaskReservation does.

        ``accepted`` or ``rejected`` (with an optional activity to move the worker to) answer a
        pending reservation; ``wrapping`` and ``completed`` move an accepted one's task on.
        Anything else, or a reservation that is no longer pending, is a 400.
        """
        space = self._space(workspace_sid)
        task = self._task_in(space, task_sid)
        path = f"{task.url.removeprefix(BASE_URL)}/Reservations/{reservation_sid}"
        reservation = next((r for r in task.reservations if r.sid == reservation_sid), None)
        if reservation is None:
            raise not_found(path)
        return self._answer(space, reservation, status, worker_activity_sid, if_match)
