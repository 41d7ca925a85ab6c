"""TaskRouter, simulated: workspaces, activities, workers, queues, workflows, tasks and reservations.

One `TaskRouter` owns the state of every workspace as mutable records, one dataclass per Twilio
resource, each rendering Twilio's JSON with ``to_resource()``. Its Python API is what the other
simulator modules and the scenario builder call; `TaskRouter.handlers` serves the REST operations
(operation ids of Twilio's ``twilio_taskrouter_v1`` description) on top of that same API.

Every public method and handler holds the simulator's shared lock, and the timers (reservation
timeout, workflow step timeout, task TTL) fire under it. Events are collected while an operation
changes state and published when the outermost operation ends, in order: stored for the Events
API, passed to the listeners, and posted to the workspace's EventCallbackUrl.

Routing (https://www.twilio.com/docs/taskrouter/lifecycle-task-workflows-and-assignment,
https://www.twilio.com/docs/taskrouter/task-evaluation). Where Twilio's docs are ambiguous, the
reading played is the simulator's profile (simulator/profiles.py); docs/twilio-behaviour.md gives
the sources and each reading.

- A task matches the first filter whose expression holds for its attributes, else the default
  filter, and walks the filter's targets. Step deadlines are cumulative from the moment the task
  entered the filter ("the queue timeout will be based on the current age of the Task"), so target
  N is in force until the timeouts of targets 1..N have elapsed. A target without a timeout holds
  the task until something else moves it. A step that expires while the task is reserved never
  pulls an offer back: the task moves on when it is pending again.
- After the last target with a timeout, ``workflow.timeout`` fires; the task is then canceled
  ("Workflow Timeout") or moves to the default filter, as the ``workflow_end`` switch says. A task
  that matches no filter of a workflow without a default filter is canceled at once.
- A task in a step is offered to as many eligible workers at once as the ``reservations`` switch
  allows (a known-worker target: that one worker); the first acceptance wins and rescinds the
  others. A reserved task short of that number gets more reservations as workers free up, never
  from a worker offered it since it was last pending. Eligible: an available activity, room on
  the task's channel (``IgnoreCapacity`` skips both), membership of the target's queue, a match
  of the target's expression, and being the known worker when the target names one, all against
  the task's current attributes. Among the eligible, the worker offered a task least recently
  goes first, never-offered workers in creation order: a deterministic stand-in for Twilio's
  "longest idle". When a worker frees up, waiting tasks are offered highest priority first, then
  oldest (``task_order`` and ``prioritize_queue_order`` are kept but not simulated).
- When its last pending reservation is rejected or times out, the task is pending again and
  routed at once, so in a known-worker step the same worker can be offered it again. Where it
  carries on, and whether attributes updated while it was reserved change that, is the
  ``redrive`` switch.
- Updating a pending task's attributes re-drives it from the top of the workflow (new deadlines);
  a reserved or assigned task is not re-driven.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from simulator.core import (
    ApiRequest,
    ApiResult,
    Clock,
    Handler,
    SimError,
    WebhookDispatcher,
    invalid,
    iso_date,
    new_sid,
    not_found,
)
from simulator.expressions import Expression, ExpressionError, compile_expression
from simulator.profiles import Profile

log = logging.getLogger(__name__)

BASE_URL = "https://taskrouter.twilio.com/v1"

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
ALL_WORKERS = "1==1"
DEFAULT_RESERVATION_TIMEOUT = 120
MAX_RESERVATION_TIMEOUT = 86_400
DEFAULT_TASK_TTL = 86_400
MAX_TASK_TTL = 1_209_600
MAX_ATTRIBUTES_LENGTH = 4096
MAX_PRIORITY = 2**31 - 1
MAX_RESERVED_WORKERS = 50
# "Tasks are automatically canceled after 1,000 rejections" (TaskRouter Reservation docs).
MAX_ASSIGNMENTS = 1000
DEFAULT_EVENT_MINUTES = 15

TTL_EXCEEDED = "Task TTL Exceeded"
MAX_ASSIGNMENTS_EXCEEDED = "Max assignment count exceeded"
WORKFLOW_TIMEOUT = "Workflow Timeout"

# Reservations that consume a worker channel's capacity, and those that count as assigned tasks.
_HOLDING = frozenset({"pending", "accepted", "wrapping"})
_ASSIGNED = frozenset({"accepted", "wrapping"})
# Form fields every event carries; the rest is the event's data in the Events API.
_ENVELOPE = frozenset(
    {"Sid", "EventType", "AccountSid", "EventDescription", "ResourceType", "ResourceSid", "Timestamp", "TimestampMs"}
)


def _workspace_url(workspace_sid: str) -> str:
    return f"{BASE_URL}/Workspaces/{workspace_sid}"


def _dates(record: Any) -> dict[str, str]:
    return {"date_created": iso_date(record.date_created), "date_updated": iso_date(record.date_updated)}


# --- Records ------------------------------------------------------------------------------------


@dataclass
class Activity:
    """A worker state; workers in an ``available`` activity receive offers."""

    sid: str
    workspace_sid: str
    account_sid: str
    friendly_name: str
    available: bool
    date_created: float
    date_updated: float

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/Activities/{self.sid}"

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this activity."""
        return {
            "account_sid": self.account_sid,
            "available": self.available,
            **_dates(self),
            "friendly_name": self.friendly_name,
            "sid": self.sid,
            "workspace_sid": self.workspace_sid,
            "url": self.url,
            "links": {"workspace": _workspace_url(self.workspace_sid)},
        }


@dataclass
class Workspace:
    """A TaskRouter workspace's settings; its resources live in the `TaskRouter`."""

    sid: str
    account_sid: str
    friendly_name: str
    default_activity: Activity
    timeout_activity: Activity
    date_created: float
    date_updated: float
    event_callback_url: str | None = None
    events_filter: str | None = None
    multi_task_enabled: bool = True
    prioritize_queue_order: str = "FIFO"

    @property
    def url(self) -> str:
        return _workspace_url(self.sid)

    def publishes(self, event_type: str) -> bool:
        """Whether ``event_type`` passes the EventsFilter (an empty filter passes every event)."""
        wanted = {name.strip() for name in (self.events_filter or "").split(",") if name.strip()}
        return not wanted or event_type in wanted

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this workspace."""
        links = {
            name: f"{self.url}/{path}"
            for name, path in (
                ("activities", "Activities"),
                ("statistics", "Statistics"),
                ("real_time_statistics", "RealTimeStatistics"),
                ("cumulative_statistics", "CumulativeStatistics"),
                ("task_queues", "TaskQueues"),
                ("tasks", "Tasks"),
                ("workers", "Workers"),
                ("workflows", "Workflows"),
                ("task_channels", "TaskChannels"),
                ("events", "Events"),
            )
        }
        return {
            "account_sid": self.account_sid,
            **_dates(self),
            "default_activity_name": self.default_activity.friendly_name,
            "default_activity_sid": self.default_activity.sid,
            "event_callback_url": self.event_callback_url,
            "events_filter": self.events_filter,
            "friendly_name": self.friendly_name,
            "multi_task_enabled": self.multi_task_enabled,
            "prioritize_queue_order": self.prioritize_queue_order,
            "sid": self.sid,
            "timeout_activity_name": self.timeout_activity.friendly_name,
            "timeout_activity_sid": self.timeout_activity.sid,
            "url": self.url,
            "links": links,
        }


@dataclass
class TaskChannel:
    """A kind of work (``chat``, ``sms``, …); workers have a capacity per channel."""

    sid: str
    workspace_sid: str
    account_sid: str
    unique_name: str
    friendly_name: str
    date_created: float
    date_updated: float
    channel_optimized_routing: bool = False

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/TaskChannels/{self.sid}"

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this task channel."""
        return {
            "account_sid": self.account_sid,
            **_dates(self),
            "friendly_name": self.friendly_name,
            "sid": self.sid,
            "unique_name": self.unique_name,
            "workspace_sid": self.workspace_sid,
            "channel_optimized_routing": self.channel_optimized_routing,
            "url": self.url,
            "links": {"workspace": _workspace_url(self.workspace_sid)},
        }


@dataclass
class WorkerChannel:
    """A worker's capacity on one task channel.

    ``available`` is the channel's own switch (UpdateWorkerChannel ``Available``); ``holding``
    holds the sids of the reservations that consume capacity (pending, accepted or wrapping) and
    ``assigned`` those of accepted or wrapping ones.
    """

    sid: str
    worker_sid: str
    workspace_sid: str
    account_sid: str
    task_channel: TaskChannel
    date_created: float
    date_updated: float
    configured_capacity: int = 1
    available: bool = True
    holding: set[str] = field(default_factory=set)
    assigned: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/Workers/{self.worker_sid}/Channels/{self.sid}"

    @property
    def assigned_tasks(self) -> int:
        return len(self.assigned)

    @property
    def has_room(self) -> bool:
        """Whether the channel is switched on and has capacity left for one more reservation."""
        return self.available and len(self.holding) < self.configured_capacity

    @property
    def available_capacity_percentage(self) -> int:
        if self.configured_capacity <= 0:
            return 0
        free = max(self.configured_capacity - len(self.holding), 0)
        return free * 100 // self.configured_capacity

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this worker channel."""
        return {
            "account_sid": self.account_sid,
            "assigned_tasks": self.assigned_tasks,
            "available": self.available,
            "available_capacity_percentage": self.available_capacity_percentage,
            "configured_capacity": self.configured_capacity,
            **_dates(self),
            "sid": self.sid,
            "task_channel_sid": self.task_channel.sid,
            "task_channel_unique_name": self.task_channel.unique_name,
            "worker_sid": self.worker_sid,
            "workspace_sid": self.workspace_sid,
            "url": self.url,
        }


@dataclass
class Worker:
    """An agent: attributes, an activity, and a `WorkerChannel` per task channel sid.

    ``last_offered`` orders the choice between eligible workers (lower goes first; -1 never
    offered); ``reservations`` is every reservation the worker ever had, oldest first.
    """

    sid: str
    workspace_sid: str
    account_sid: str
    friendly_name: str
    attributes: dict[str, Any]
    activity: Activity
    date_created: float
    date_updated: float
    date_status_changed: float
    channels: dict[str, WorkerChannel] = field(default_factory=dict)
    reservations: list[Reservation] = field(default_factory=list, repr=False)
    version: int = 0
    last_offered: int = -1

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/Workers/{self.sid}"

    @property
    def available(self) -> bool:
        return self.activity.available

    def channel(self, name_or_sid: str) -> WorkerChannel | None:
        """The worker channel by its sid, its task channel's sid or its task channel's unique name."""
        for channel in self.channels.values():
            if name_or_sid in (channel.sid, channel.task_channel.sid, channel.task_channel.unique_name):
                return channel
        return None

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this worker."""
        workspace = _workspace_url(self.workspace_sid)
        return {
            "account_sid": self.account_sid,
            "activity_name": self.activity.friendly_name,
            "activity_sid": self.activity.sid,
            "attributes": json.dumps(self.attributes),
            "available": self.available,
            **_dates(self),
            "date_status_changed": iso_date(self.date_status_changed),
            "friendly_name": self.friendly_name,
            "sid": self.sid,
            "workspace_sid": self.workspace_sid,
            "url": self.url,
            "links": {
                "channels": f"{self.url}/Channels",
                "activity": self.activity.url,
                "workspace": workspace,
                "statistics": f"{workspace}/Workers/Statistics",
                "real_time_statistics": f"{workspace}/Workers/RealTimeStatistics",
                "cumulative_statistics": f"{workspace}/Workers/CumulativeStatistics",
                "worker_statistics": f"{self.url}/Statistics",
                "worker_channels": f"{self.url}/Channels",
                "reservations": f"{self.url}/Reservations",
            },
        }


@dataclass
class TaskQueue:
    """A queue; a worker belongs to it when ``target_workers`` (worker scope) matches it."""

    sid: str
    workspace_sid: str
    account_sid: str
    friendly_name: str
    target_workers: str
    target_expression: Expression
    date_created: float
    date_updated: float
    task_order: str = "FIFO"
    max_reserved_workers: int = 1
    reservation_activity: Activity | None = None
    assignment_activity: Activity | None = None

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/TaskQueues/{self.sid}"

    def admits(self, worker: Worker) -> bool:
        """Whether ``worker`` is a member of this queue."""
        return self.target_expression.matches(worker=_worker_scope(worker))

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this task queue."""
        workspace = _workspace_url(self.workspace_sid)
        links = {
            "workspace": workspace,
            "statistics": f"{self.url}/Statistics",
            "real_time_statistics": f"{self.url}/RealTimeStatistics",
            "cumulative_statistics": f"{self.url}/CumulativeStatistics",
            "list_statistics": f"{workspace}/TaskQueues/Statistics",
            "bulk_real_time_statistics": f"{workspace}/TaskQueues/RealTimeStatistics",
        }
        if self.assignment_activity:
            links["assignment_activity"] = self.assignment_activity.url
        if self.reservation_activity:
            links["reservation_activity"] = self.reservation_activity.url
        return {
            "account_sid": self.account_sid,
            "assignment_activity_name": self.assignment_activity and self.assignment_activity.friendly_name,
            "assignment_activity_sid": self.assignment_activity and self.assignment_activity.sid,
            **_dates(self),
            "friendly_name": self.friendly_name,
            "max_reserved_workers": self.max_reserved_workers,
            "reservation_activity_name": self.reservation_activity and self.reservation_activity.friendly_name,
            "reservation_activity_sid": self.reservation_activity and self.reservation_activity.sid,
            "sid": self.sid,
            "target_workers": self.target_workers,
            "task_order": self.task_order,
            "url": self.url,
            "workspace_sid": self.workspace_sid,
            "links": links,
        }


@dataclass(frozen=True, eq=False)
class Target:
    """One routing step of a filter. ``queue`` is None only for a task routed straight to a worker."""

    queue: TaskQueue | None
    expression: Expression | None = None
    known_worker_sid: str | None = None
    known_worker_friendly_name: str | None = None
    priority: int | None = None
    timeout: int | None = None


@dataclass(frozen=True, eq=False)
class Filter:
    """A workflow filter: its ``expression`` (None: matches every task) and its targets in order."""

    name: str
    expression: Expression | None
    targets: tuple[Target, ...]


@dataclass(frozen=True, eq=False)
class Routing:
    """A parsed workflow configuration (or the one-step routing of a task created with a target)."""

    filters: tuple[Filter, ...]
    default: Filter | None


@dataclass
class Workflow:
    """A workflow: its configuration text as given and the `Routing` parsed from it."""

    sid: str
    workspace_sid: str
    account_sid: str
    friendly_name: str
    configuration: str
    routing: Routing
    date_created: float
    date_updated: float
    task_reservation_timeout: int = DEFAULT_RESERVATION_TIMEOUT
    assignment_callback_url: str | None = None
    fallback_assignment_callback_url: str | None = None

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/Workflows/{self.sid}"

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this workflow."""
        return {
            "account_sid": self.account_sid,
            "assignment_callback_url": self.assignment_callback_url,
            "configuration": self.configuration,
            **_dates(self),
            "document_content_type": "application/json",
            "fallback_assignment_callback_url": self.fallback_assignment_callback_url,
            "friendly_name": self.friendly_name,
            "sid": self.sid,
            "task_reservation_timeout": self.task_reservation_timeout,
            "workspace_sid": self.workspace_sid,
            "url": self.url,
            "links": {
                "statistics": f"{self.url}/Statistics",
                "real_time_statistics": f"{self.url}/RealTimeStatistics",
                "cumulative_statistics": f"{self.url}/CumulativeStatistics",
            },
        }


@dataclass
class _Progress:
    """Where a task is in its routing: the filter it is in, the step, and that step's timer.

    ``matched`` is the filter its attributes selected; ``filter`` differs from it once the task
    timed out into the default filter. ``entered_at`` (clock time) starts the step deadlines.
    """

    routing: Routing
    matched: Filter | None
    filter: Filter
    entered_at: float
    step: int = 0
    timer: Any = None
    expired: bool = False

    @property
    def target(self) -> Target:
        return self.filter.targets[self.step]

    def deadline(self, step: int) -> float | None:
        """Simulated seconds after ``entered_at`` at which ``step`` ends; None if it never does."""
        total = 0
        for target in self.filter.targets[: step + 1]:
            if target.timeout is None:
                return None
            total += target.timeout
        return total

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass
class Task:
    """A task; ``attributes`` is the decoded JSON, ``version`` its ETag.

    ``queue`` is the queue of the step it is in (or was assigned from); ``reservations`` are all
    of its reservations, oldest first; ``assignment_count`` counts its pending→reserved moves;
    ``round_start`` is the index in ``reservations`` of the first one made since it was last pending.
    """

    sid: str
    workspace_sid: str
    account_sid: str
    attributes: dict[str, Any]
    task_channel: TaskChannel
    workflow: Workflow | None
    priority: int
    timeout: int
    date_created: float
    date_updated: float
    time_scale: float = field(default=1.0, repr=False)
    assignment_status: str = "pending"
    reason: str | None = None
    queue: TaskQueue | None = None
    task_queue_entered_date: float | None = None
    routing_target: str | None = None
    ignore_capacity: bool = False
    version: int = 0
    assignment_count: int = 0
    reservations: list[Reservation] = field(default_factory=list, repr=False)
    round_start: int = 0
    direct_routing: Routing | None = field(default=None, repr=False)
    progress: _Progress | None = field(default=None, repr=False)
    ttl_timer: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{_workspace_url(self.workspace_sid)}/Tasks/{self.sid}"

    @property
    def age(self) -> int:
        """Simulated seconds since the task was created (the clock's scale undone)."""
        return int((Clock.now() - self.date_created) / self.time_scale)

    def to_resource(self) -> dict[str, Any]:
        """Twilio's JSON for this task."""
        workspace = _workspace_url(self.workspace_sid)
        links = {"workspace": workspace, "reservations": f"{self.url}/Reservations"}
        if self.queue:
            links["task_queue"] = self.queue.url
        if self.workflow:
            links["workflow"] = self.workflow.url
        return {
            "account_sid": self.account_sid,
            "age": self.age,
            "assignment_status": self.assignment_status,
            "attributes": json.dumps(self.attributes),
            "addons": "{}",
            **_dates(self),
            "task_queue_entered_date": self.task_queue_entered_date and iso_date(self.task_queue_entered_date),
            "priority": self.priority,
            "reason": self.reason,
            "sid": self.sid,
            "task_queue_sid": self.queue and self.queue.sid,
            "task_queue_friendly_name": self.queue and self.queue.friendly_name,
            "task_channel_sid": self.task_channel.sid,
            "task_channel_unique_name": self.task_channel.unique_name,
            "timeout": self.timeout,
            "workflow_sid": self.workflow and self.workflow.sid,
            "workflow_friendly_name": self.workflow and self.workflow.friendly_name,
            "workspace_sid": self.workspace_sid,
            "url": self.url,
            "links": links,
            "virtual_start_time": iso_date(self.date_created),
            "ignore_capacity": self.ignore_capacity,
            "routing_target": self.routing_target,
        }


@dataclass
class Reservation:
    """An offer of ``task`` to ``worker``, made through ``queue`` and holding ``channel`` capacity."""

    sid: str
    workspace_sid: str
    account_sid: str
    task: Task
    worker: Worker
    channel: WorkerChannel
    queue: TaskQueue | None
    date_created: float
    date_updated: float
    status: str = "pending"
    version: int = 0
    timer: Any = field(default=None, repr=False)

    def to_resource(self, *, via_worker: bool = False) -> dict[str, Any]:
        """Twilio's JSON for this reservation, under the task's path or (``via_worker``) the worker's."""
        parent = self.worker.url if via_worker else self.task.url
        return {
            "account_sid": self.account_sid,
            **_dates(self),
            "reservation_status": self.status,
            "sid": self.sid,
            "task_sid": self.task.sid,
            "worker_name": self.worker.friendly_name,
            "worker_sid": self.worker.sid,
            "workspace_sid": self.workspace_sid,
            "url": f"{parent}/Reservations/{self.sid}",
            "links": {
                "task": self.task.url,
                "worker": self.worker.url,
                "workspace": _workspace_url(self.workspace_sid),
            },
        }


@dataclass(frozen=True)
class Event:
    """One TaskRouter event; ``fields`` is exactly the form posted to the EventCallbackUrl."""

    sid: str
    workspace_sid: str
    account_sid: str
    event_type: str
    resource_type: str
    resource_sid: str
    resource_url: str
    description: str
    timestamp: float
    fields: Mapping[str, str]

    def to_resource(self) -> dict[str, Any]:
        """The Events API's JSON: the non-envelope fields become ``event_data`` in snake_case."""
        workspace = _workspace_url(self.workspace_sid)
        return {
            "account_sid": self.account_sid,
            "actor_sid": self.workspace_sid,
            "actor_type": "workspace",
            "actor_url": workspace,
            "description": self.description,
            "event_data": {_snake(name): value for name, value in self.fields.items() if name not in _ENVELOPE},
            "event_date": iso_date(self.timestamp),
            "event_date_ms": int(self.timestamp * 1000),
            "event_type": self.event_type,
            "resource_sid": self.resource_sid,
            "resource_type": self.resource_type,
            "resource_url": self.resource_url,
            "sid": self.sid,
            "source": "twilio",
            "source_ip_address": "127.0.0.1",
            "workspace_sid": self.workspace_sid,
            "url": f"{workspace}/Events/{self.sid}",
        }


@dataclass
class _Space:
    """A workspace and everything in it, each kind by sid in creation order (tasks also by status)."""

    workspace: Workspace
    activities: dict[str, Activity] = field(default_factory=dict)
    task_channels: dict[str, TaskChannel] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    queues: dict[str, TaskQueue] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    pending: dict[str, Task] = field(default_factory=dict)
    reserved: dict[str, Task] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


# --- Helpers ------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _task_scope(task: Task) -> dict[str, Any]:
    return {**task.attributes, "sid": task.sid}


def _worker_scope(worker: Worker) -> dict[str, Any]:
    return {**worker.attributes, "sid": worker.sid}


def _compile(text: str, default_scope: str, what: str) -> Expression:
    try:
        return compile_expression(text, default_scope)
    except ExpressionError as exc:
        raise invalid(f"{what}: {exc}") from None


def _attributes(value: str | Mapping[str, Any], what: str = "Attributes") -> dict[str, Any]:
    """Decode and check attributes given as JSON text (REST) or as a mapping (Python API)."""
    if isinstance(value, str):
        text = value
        try:
            decoded = json.loads(value)
        except ValueError:
            raise invalid(f"{what} must be valid JSON") from None
    else:
        decoded = dict(value)
        text = json.dumps(decoded, separators=(",", ":"))
    if not isinstance(decoded, dict):
        raise invalid(f"{what} must be a JSON object")
    if len(text) > MAX_ATTRIBUTES_LENGTH:
        raise invalid(f"{what} exceeds the maximum length of {MAX_ATTRIBUTES_LENGTH} characters")
    return decoded


def _check_version(version: int, if_match: str | None, path: str) -> None:
    """Twilio's optimistic concurrency: an If-Match that is not the current ETag fails with 412."""
    if if_match is None or if_match.strip() == "*":
        return
    if if_match.strip().removeprefix("W/").strip('"') != str(version):
        raise SimError(412, 20412, f"The If-Match header {if_match} does not match the current ETag of {path}")


def _whole(value: Any, what: str) -> int:
    """A non-negative integer from a workflow configuration, where numbers may be written as strings."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid workflow configuration: {what} must be a whole number, not {value!r}") from None
    if number < 0:
        raise invalid(f"Invalid workflow configuration: {what} must not be negative")
    return number


_TARGET_KEYS = frozenset({
    "queue", "expression", "known_worker_sid", "known_worker_friendly_name", "priority", "timeout", "order_by",
    "skip_if",
})
_FILTER_KEYS = frozenset({"filter_friendly_name", "friendly_name", "expression", "targets"})


def _parse_configuration(text: str, queues: Mapping[str, TaskQueue]) -> Routing:
    """Parse and check a workflow configuration, raising a 400 that names what is wrong.

    Stricter than Twilio in one way: an unknown key in a filter or target is refused, since a
    misspelled ``known_worker_sid`` would otherwise silently route to anyone. ``order_by`` and
    ``skip_if`` are accepted and not simulated.
    """

    def bad(detail: str) -> SimError:
        return invalid(f"Invalid workflow configuration: {detail}")

    try:
        document = json.loads(text)
    except ValueError:
        raise bad("Configuration is not valid JSON") from None
    routing = document.get("task_routing") if isinstance(document, dict) else None
    if not isinstance(routing, dict):
        raise bad("'task_routing' must be an object")
    raw_filters = routing.get("filters", [])
    if not isinstance(raw_filters, list):
        raise bad("'task_routing.filters' must be a list")

    def queue_of(sid: Any, where: str) -> TaskQueue:
        if sid not in queues:
            raise bad(f"{where} names queue {sid!r}, which is not a TaskQueue of this workspace")
        return queues[sid]

    filters = []
    for number, raw in enumerate(raw_filters, start=1):
        if not isinstance(raw, dict):
            raise bad(f"filter {number} must be an object")
        name = str(raw.get("filter_friendly_name") or raw.get("friendly_name") or f"Filter {number}")
        where = f"filter '{name}'"
        if unknown := set(raw) - _FILTER_KEYS:
            raise bad(f"{where} has unknown keys {sorted(unknown)}")
        if not isinstance(raw.get("expression"), str):
            raise bad(f"{where} needs an 'expression' string")
        expression = _compile(raw["expression"], "task", f"Invalid workflow configuration: {where}")
        raw_targets = raw.get("targets")
        if not isinstance(raw_targets, list) or not raw_targets:
            raise bad(f"{where} needs a non-empty 'targets' list")
        targets: list[Target] = []
        for index, spec in enumerate(raw_targets, start=1):
            there = f"{where} target {index}"
            if not isinstance(spec, dict):
                raise bad(f"{there} must be an object")
            if unknown := set(spec) - _TARGET_KEYS:
                raise bad(f"{there} has unknown keys {sorted(unknown)}")
            # Twilio's own example leaves the queue out of a later target: it stays in the last one.
            if "queue" in spec:
                queue = queue_of(spec["queue"], there)
            elif targets:
                queue = targets[-1].queue
            else:
                raise bad(f"{there} needs a 'queue'")
            if "known_worker_sid" in spec and "known_worker_friendly_name" in spec:
                raise bad(f"{there} may name known_worker_sid or known_worker_friendly_name, not both")
            for key in ("known_worker_sid", "known_worker_friendly_name"):
                if key in spec and not isinstance(spec[key], str):
                    raise bad(f"{there} '{key}' must be a string")
            target_expression = None
            if spec.get("expression") is not None:
                if not isinstance(spec["expression"], str):
                    raise bad(f"{there} 'expression' must be a string")
                target_expression = _compile(spec["expression"], "task", f"Invalid workflow configuration: {there}")
            targets.append(
                Target(
                    queue=queue,
                    expression=target_expression,
                    known_worker_sid=spec.get("known_worker_sid"),
                    known_worker_friendly_name=spec.get("known_worker_friendly_name"),
                    priority=None if spec.get("priority") is None else _whole(spec["priority"], f"{there} priority"),
                    timeout=None if spec.get("timeout") is None else _whole(spec["timeout"], f"{there} timeout"),
                )
            )
        filters.append(Filter(name, expression, tuple(targets)))
    default = None
    raw_default = routing.get("default_filter")
    if raw_default is not None:
        if not isinstance(raw_default, dict) or "queue" not in raw_default:
            raise bad("'default_filter' must be an object with a 'queue'")
        default = Filter("Default Filter", None, (Target(queue_of(raw_default["queue"], "default_filter")),))
    return Routing(tuple(filters), default)


def _reference(text: str, task: Task) -> Any:
    """A target's known worker: ``task.<path>`` reads a task attribute, anything else is literal."""
    if not text.startswith("task."):
        return text
    value: Any = task.attributes
    for key in text.removeprefix("task.").split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


# Request parameters arrive as strings (the last value of a scalar, a list for an array).


def _param(request: ApiRequest, name: str) -> Any:
    value = request.params.get(name)
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _text(request: ApiRequest, name: str) -> str | None:
    value = _param(request, name)
    return None if value is None else str(value)


def _required(request: ApiRequest, name: str) -> str:
    value = _text(request, name)
    if not value:
        raise invalid(f"Missing required parameter {name}")
    return value


def _integer(request: ApiRequest, name: str) -> int | None:
    value = _param(request, name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected an integer") from None


def _boolean(request: ApiRequest, name: str) -> bool | None:
    value = _param(request, name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    # ListWorker documents `true`, `1` or `yes` for Available; the same words are accepted everywhere.
    word = str(value).lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected true or false")


def _values(request: ApiRequest, name: str) -> list[str]:
    value = request.params.get(name)
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _header(request: ApiRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _date_param(request: ApiRequest, name: str) -> float | None:
    value = _text(request, name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected an ISO 8601 date") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a public method as one operation: under the lock, events published at its end."""

    @functools.wraps(method)
    def wrapper(self: TaskRouter, *args: Any, **kwargs: Any) -> Any:
        with self._operation():
            return method(self, *args, **kwargs)

    return wrapper


# --- The simulator ------------------------------------------------------------------------------


class TaskRouter:
    """The simulated TaskRouter of one account."""

    def __init__(self, account_sid: str, clock: Clock, dispatcher: WebhookDispatcher, profile: Profile | None = None):
        self.account_sid = account_sid
        self.clock = clock
        self.dispatcher = dispatcher
        self.profile = profile or Profile()
        self._spaces: dict[str, _Space] = {}
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
        space: _Space,
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

    def _space(self, workspace_sid: str) -> _Space:
        space = self._spaces.get(workspace_sid)
        if space is None:
            raise not_found(f"/v1/Workspaces/{workspace_sid}")
        return space

    @staticmethod
    def _find(items: Mapping[str, Any], sid: str, path: str) -> Any:
        if sid not in items:
            raise not_found(path)
        return items[sid]

    def _task_in(self, space: _Space, task_sid: str) -> Task:
        return self._find(space.tasks, task_sid, f"/v1/Workspaces/{space.workspace.sid}/Tasks/{task_sid}")

    def _worker_in(self, space: _Space, worker_sid: str) -> Worker:
        return self._find(space.workers, worker_sid, f"/v1/Workspaces/{space.workspace.sid}/Workers/{worker_sid}")

    def _activity_param(self, space: _Space, sid: str, name: str) -> Activity:
        # An unknown sid in a parameter is a bad request, not a missing resource.
        if sid not in space.activities:
            raise invalid(f"{name} {sid} is not an Activity of workspace {space.workspace.sid}")
        return space.activities[sid]

    def _channel_param(self, space: _Space, name_or_sid: str) -> TaskChannel:
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
        space = _Space(workspace, activities={activity.sid: activity for activity in activities})
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

    def _find_channel(self, space: _Space, name_or_sid: str) -> TaskChannel:
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
        decoded = _attributes(attributes if attributes is not None else {})
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
        _check_version(worker.version, if_match, worker.url)
        activity = self._activity_param(space, activity_sid, "ActivitySid") if activity_sid else None
        decoded = None if attributes is None else _attributes(attributes)
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
        _check_version(worker.version, if_match, worker.url)
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
        expression = _compile(target_workers, "worker", "Invalid TargetWorkers")
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
        expression = _compile(target_workers, "worker", "Invalid TargetWorkers") if target_workers else None
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
        routing = _parse_configuration(text, space.queues)
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
            routing = _parse_configuration(text, space.queues)
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
        decoded = _attributes(attributes)
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

    def _routing_for(
        self, space: _Space, workflow_sid: str | None, queue_sid: str | None, routing_target: str | None,
        ignore_capacity: bool | None,
    ) -> tuple[Workflow | None, Routing | None, bool, TaskQueue | None]:
        """A new task's workflow or one-step routing, whether it ignores capacity, and its first queue."""
        workspace = space.workspace.sid
        if queue_sid and queue_sid not in space.queues:
            raise invalid(f"TaskQueueSid {queue_sid} is not a TaskQueue of workspace {workspace}")
        if routing_target and routing_target.startswith("WK"):
            if routing_target not in space.workers:
                raise invalid(f"RoutingTarget {routing_target} is not a Worker of workspace {workspace}")
            # The task counts in the named queue, but only the worker matters for the offer.
            step = Filter("RoutingTarget", None, (Target(None, known_worker_sid=routing_target),))
            ignore = True if ignore_capacity is None else ignore_capacity
            return None, Routing((step,), None), ignore, space.queues.get(queue_sid or "")
        if ignore_capacity:
            raise invalid("IgnoreCapacity can only be used when RoutingTarget is a Worker")
        if routing_target and routing_target.startswith("WQ"):
            if routing_target not in space.queues:
                raise invalid(f"RoutingTarget {routing_target} is not a TaskQueue of workspace {workspace}")
            queue_sid, workflow_sid = routing_target, None
        elif routing_target and routing_target.startswith("WW"):
            workflow_sid = routing_target
        elif routing_target:
            raise invalid(f"RoutingTarget {routing_target} is not a Worker, TaskQueue or Workflow sid")
        if workflow_sid:
            if workflow_sid not in space.workflows:
                raise invalid(f"WorkflowSid {workflow_sid} is not a Workflow of workspace {workspace}")
            return space.workflows[workflow_sid], None, False, None
        if queue_sid:
            step = Filter("TaskQueueSid", None, (Target(space.queues[queue_sid]),))
            return None, Routing((step,), None), False, None
        if len(space.workflows) != 1:
            raise invalid("WorkflowSid is required when the workspace does not have exactly one Workflow")
        return next(iter(space.workflows.values())), None, False, None

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
        _check_version(task.version, if_match, task.url)
        decoded = None if attributes is None else _attributes(attributes)
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
        _check_version(task.version, if_match, task.url)
        self._stop_timers(task)
        for reservation in task.reservations:
            if reservation.status in _HOLDING:
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

    _TRANSITIONS = {
        "canceled": ("pending", "reserved"),
        "wrapping": ("assigned",),
        "completed": ("assigned", "wrapping"),
    }

    def _check_transition(self, task: Task, status: str) -> None:
        allowed = self._TRANSITIONS.get(status)
        if allowed is None:
            raise invalid(f"AssignmentStatus cannot be set to {status}")
        if task.assignment_status not in allowed:
            raise invalid(f"Task {task.sid} cannot move from {task.assignment_status} to {status}")

    def _move_task(self, task: Task, status: str, reason: str | None) -> None:
        if status == "canceled":
            self._cancel(task, reason)
            return
        if reason is not None:
            task.reason = reason
        reservation = next((r for r in task.reservations if r.status in _ASSIGNED), None)
        self._set_task_status(task, status)
        if status == "wrapping":
            self._task_event(task, "task.wrapup", f"Task {task.sid} wrapping up")
            if reservation:
                self._set_reservation_status(reservation, "wrapping")
                self._reservation_event(reservation, "reservation.wrapup", f"Reservation {reservation.sid} wrapping up")
            return
        self._task_event(task, "task.completed", f"Task {task.sid} completed")
        if reservation:
            self._set_reservation_status(reservation, "completed")
            self._reservation_event(reservation, "reservation.completed", f"Reservation {reservation.sid} completed")
        self._dispatch(self._space(task.workspace_sid))

    def _cancel(self, task: Task, reason: str | None) -> None:
        """Cancel an open task: its pending reservations first (``reservation.canceled``), then the task."""
        for reservation in task.reservations:
            if reservation.status == "pending":
                self._set_reservation_status(reservation, "canceled")
                self._reservation_event(reservation, "reservation.canceled", f"Reservation {reservation.sid} canceled")
        self._stop_timers(task)
        if reason is not None:
            task.reason = reason
        self._set_task_status(task, "canceled")
        self._task_event(task, "task.canceled", f"Task {task.sid} canceled")
        self._dispatch(self._space(task.workspace_sid))

    def _touch_task(self, task: Task) -> None:
        task.version += 1
        task.date_updated = self.clock.now()

    def _set_task_status(self, task: Task, status: str) -> None:
        task.assignment_status = status
        space = self._space(task.workspace_sid)
        for state, tasks in (("pending", space.pending), ("reserved", space.reserved)):
            if status == state:
                tasks[task.sid] = task
            else:
                tasks.pop(task.sid, None)
        self._touch_task(task)

    def _stop_timers(self, task: Task) -> None:
        if task.progress:
            task.progress.stop()
        if task.ttl_timer:
            task.ttl_timer.cancel()
            task.ttl_timer = None

    def _ttl_expired(self, task: Task) -> None:
        task.ttl_timer = None
        if task.assignment_status in ("pending", "reserved"):
            self._cancel(task, TTL_EXCEEDED)

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

    def _answer(
        self, space: _Space, reservation: Reservation, status: str, worker_activity_sid: str | None,
        if_match: str | None,
    ) -> Reservation:
        _check_version(reservation.version, if_match, f"{reservation.task.url}/Reservations/{reservation.sid}")
        activity = (self._activity_param(space, worker_activity_sid, "WorkerActivitySid")
                    if worker_activity_sid else None)
        if status in ("accepted", "rejected"):
            if reservation.status != "pending":
                raise invalid(f"Reservation {reservation.sid} is {reservation.status}, not pending")
            if status == "accepted":
                self._accept(reservation)
            else:
                self._reject(reservation, activity)
            return reservation
        if status in ("wrapping", "completed") and reservation.status in _ASSIGNED:
            self._check_transition(reservation.task, status)
            self._move_task(reservation.task, status, None)
            return reservation
        raise invalid(f"Reservation {reservation.sid} cannot move from {reservation.status} to {status}")

    def _set_reservation_status(self, reservation: Reservation, status: str) -> None:
        reservation.status = status
        reservation.version += 1
        reservation.date_updated = self.clock.now()
        channel = reservation.channel
        channel.holding.discard(reservation.sid)
        channel.assigned.discard(reservation.sid)
        if status in _HOLDING:
            channel.holding.add(reservation.sid)
        if status in _ASSIGNED:
            channel.assigned.add(reservation.sid)
        if status != "pending" and reservation.timer:
            reservation.timer.cancel()
            reservation.timer = None

    def _accept(self, reservation: Reservation) -> None:
        """Assign the task; the first acceptance wins, so its other pending reservations are rescinded."""
        task = reservation.task
        self._set_reservation_status(reservation, "accepted")
        # The TTL only limits the wait for an agent, and an assigned task is routed no further.
        self._stop_timers(task)
        self._set_task_status(task, "assigned")
        self._reservation_event(reservation, "reservation.accepted", f"Reservation {reservation.sid} accepted")
        rescinded = [other for other in task.reservations if other.status == "pending"]
        for other in rescinded:
            self._set_reservation_status(other, "rescinded")
            self._reservation_event(other, "reservation.rescinded", f"Reservation {other.sid} rescinded")
        if rescinded:
            self._dispatch(self._space(task.workspace_sid))

    def _reject(self, reservation: Reservation, activity: Activity | None) -> None:
        self._set_reservation_status(reservation, "rejected")
        self._reservation_event(reservation, "reservation.rejected", f"Reservation {reservation.sid} rejected")
        # Moving the worker first is how Twilio advises keeping a rejected task from coming straight back.
        if activity:
            self._set_activity(reservation.worker, activity)
        self._offer_ended(reservation.task)
        self._dispatch(self._space(reservation.workspace_sid))

    def _reservation_timed_out(self, reservation: Reservation) -> None:
        reservation.timer = None
        if reservation.status != "pending":
            return
        self._set_reservation_status(reservation, "timeout")
        self._reservation_event(reservation, "reservation.timeout", f"Reservation {reservation.sid} timed out")
        space = self._space(reservation.workspace_sid)
        self._set_activity(reservation.worker, space.workspace.timeout_activity)
        self._offer_ended(reservation.task)
        self._dispatch(space)

    def _offer_ended(self, task: Task) -> None:
        """One reservation of the task ended unaccepted: once none is pending, the task is pending again."""
        if not any(reservation.status == "pending" for reservation in task.reservations):
            self._requeue(task)

    # --- Routing ---

    def _routing(self, task: Task) -> Routing:
        return task.workflow.routing if task.workflow else task.direct_routing

    @staticmethod
    def _match(routing: Routing, task: Task) -> Filter | None:
        scope = _task_scope(task)
        for candidate in routing.filters:
            if candidate.expression is None or candidate.expression.matches(task=scope):
                return candidate
        return routing.default

    def _drive(self, task: Task) -> None:
        """Route a pending task from the top of its workflow, and offer it."""
        routing = self._routing(task)
        if task.workflow:
            self._task_event(task, "workflow.entered",
                             f"Task {task.sid} entered Workflow {task.workflow.friendly_name}")
        self._enter_filter(task, routing, self._match(routing, task))
        self._offer(task)

    def _enter_filter(self, task: Task, routing: Routing, matched: Filter | None, into: Filter | None = None) -> None:
        """Start the task at the first step of ``into`` (by default the filter it ``matched``)."""
        if task.progress:
            task.progress.stop()
        into = into or matched
        if into is None:
            task.progress = None
            self._workflow_timeout(task, routing, matched, None)
            return
        task.progress = _Progress(routing, matched, into, self.clock.now())
        self._enter_step(task, 0)

    def _enter_step(self, task: Task, index: int) -> None:
        """Put the task in step ``index`` of its filter, skipping steps whose deadline has passed."""
        progress = task.progress
        elapsed = self._elapsed(progress.entered_at)
        targets = progress.filter.targets
        while True:
            if index >= len(targets):
                self._workflow_timeout(task, progress.routing, progress.matched, progress.filter)
                return
            deadline = progress.deadline(index)
            if deadline is None or deadline > elapsed:
                break
            index += 1
        target = targets[index]
        progress.stop()
        progress.step, progress.expired = index, False
        if target.priority is not None:
            task.priority = target.priority
        if target.queue is not None:
            task.queue = target.queue
            task.task_queue_entered_date = self.clock.now()
        self._touch_task(task)
        if task.workflow:
            self._task_event(task, "workflow.target-matched",
                             f"Task {task.sid} matched filter {progress.filter.name} target {index + 1}",
                             WorkflowFilterName=progress.filter.name)
        if target.queue is not None:
            self._task_event(task, "task-queue.entered",
                             f"Task {task.sid} entered TaskQueue {target.queue.friendly_name}")
        if deadline is not None:
            progress.timer = self._after(deadline - elapsed, self._step_expired, task, progress, index)

    def _step_expired(self, task: Task, progress: _Progress, index: int) -> None:
        if task.progress is not progress or progress.step != index:
            return
        progress.timer = None
        if task.assignment_status == "reserved":
            # A pending offer is never pulled back; the task moves on if it comes back to pending.
            progress.expired = True
        elif task.assignment_status == "pending":
            self._enter_step(task, index + 1)
            self._offer(task)

    def _workflow_timeout(self, task: Task, routing: Routing, matched: Filter | None, current: Filter | None) -> None:
        """The task ran out of targets, or matched no filter: ``workflow.timeout``, then it is canceled.

        With ``workflow_end`` "default_filter", a task not already in the default filter moves there instead.
        """
        if task.workflow:
            self._task_event(task, "workflow.timeout",
                             f"Task {task.sid} timed out of Workflow {task.workflow.friendly_name}")
        if (self.profile.workflow_end == "default_filter" and routing.default is not None
                and current is not routing.default):
            self._enter_filter(task, routing, matched, routing.default)
        else:
            self._cancel(task, WORKFLOW_TIMEOUT)

    def _requeue(self, task: Task) -> None:
        """Its reservations ended without assignment: the task is pending again and routed at once.

        It carries on in its filter and step (the next step if this one expired meanwhile); with
        ``redrive`` "rematch" the filters are matched again first, and another filter (attributes,
        or the workflow, changed while the task was reserved) is entered from its first step.
        """
        self._set_task_status(task, "pending")
        if task.assignment_count >= MAX_ASSIGNMENTS:
            self._cancel(task, MAX_ASSIGNMENTS_EXCEEDED)
            return
        progress = task.progress
        if self.profile.redrive == "rematch":
            routing = self._routing(task)
            matched = self._match(routing, task)
            if progress.routing is not routing or progress.matched is not matched:
                self._enter_filter(task, routing, matched)
                self._offer(task)
                return
        if progress.expired:
            self._enter_step(task, progress.step + 1)
        self._offer(task)

    def _dispatch(self, space: _Space) -> None:
        """Offer every pending or reserved task of the workspace, highest priority first, then oldest."""
        waiting = sorted((*space.pending.values(), *space.reserved.values()),
                         key=lambda task: (-task.priority, task.date_created))
        for task in waiting:
            self._offer(task)

    def _offer(self, task: Task) -> None:
        """Reserve the task for the best eligible workers of its current step, up to the step's limit.

        A pending task starts a new round of reservations. A reserved one is topped up to the limit
        with workers not yet offered it in this round, unless its step expired meanwhile.
        """
        progress = task.progress
        if progress is None or task.assignment_status not in ("pending", "reserved"):
            return
        if task.assignment_status == "pending":
            task.round_start = len(task.reservations)
        elif progress.expired:
            return
        target = progress.target
        this_round = task.reservations[task.round_start:]
        wanted = self._reservation_limit(target) - sum(1 for r in this_round if r.status == "pending")
        passed_over = {reservation.worker.sid for reservation in this_round}
        for _ in range(wanted):
            worker = self._choose_worker(task, target, passed_over)
            if worker is None:
                return
            passed_over.add(worker.sid)
            self._reserve(task, target, worker)

    def _reservation_limit(self, target: Target) -> int:
        """How many workers may hold reservations of a task in ``target`` at once."""
        if (self.profile.reservations == "one" or target.queue is None
                or target.known_worker_sid or target.known_worker_friendly_name):
            return 1
        return target.queue.max_reserved_workers

    def _reserve(self, task: Task, target: Target, worker: Worker) -> None:
        now = self.clock.now()
        reservation = Reservation(new_sid("WR"), task.workspace_sid, self.account_sid, task, worker,
                                  worker.channels[task.task_channel.sid], target.queue, now, now)
        self._reservations[reservation.sid] = reservation
        task.reservations.append(reservation)
        worker.reservations.append(reservation)
        reservation.channel.holding.add(reservation.sid)
        worker.last_offered = next(self._offers)
        if task.assignment_status == "pending":
            task.assignment_count += 1
            self._set_task_status(task, "reserved")
        timeout = task.workflow.task_reservation_timeout if task.workflow else DEFAULT_RESERVATION_TIMEOUT
        reservation.timer = self._after(timeout, self._reservation_timed_out, reservation)
        self._reservation_event(reservation, "reservation.created",
                                f"Reservation {reservation.sid} created for Worker {worker.friendly_name}")

    def _choose_worker(self, task: Task, target: Target, passed_over: set[str]) -> Worker | None:
        """The eligible worker of ``target`` offered a task least recently, leaving out ``passed_over`` sids."""
        known = None
        if target.known_worker_sid:
            known = ("sid", _reference(target.known_worker_sid, task))
        elif target.known_worker_friendly_name:
            known = ("friendly_name", _reference(target.known_worker_friendly_name, task))
        task_scope = _task_scope(task)
        best = None
        for worker in self._space(task.workspace_sid).workers.values():
            if worker.sid in passed_over or (known is not None and getattr(worker, known[0]) != known[1]):
                continue
            if not self._has_room(worker, task):
                continue
            worker_scope = _worker_scope(worker)
            if target.queue is not None and not target.queue.target_expression.matches(worker=worker_scope):
                continue
            if target.expression is not None and not target.expression.matches(task=task_scope, worker=worker_scope):
                continue
            if best is None or worker.last_offered < best.last_offered:
                best = worker
        return best

    def _has_room(self, worker: Worker, task: Task) -> bool:
        if task.ignore_capacity:
            return True
        channel = worker.channels.get(task.task_channel.sid)
        if not worker.available or channel is None or not channel.has_room:
            return False
        # Single-tasking (legacy) workspaces give a worker one task at a time across channels.
        if not self._space(worker.workspace_sid).workspace.multi_task_enabled:
            return not any(other.holding for other in worker.channels.values())
        return True

    # --- REST handlers ---

    def handlers(self) -> dict[str, Handler]:
        """Operation id → handler for every TaskRouter operation the simulator serves."""
        table: dict[str, Callable[[ApiRequest], Any]] = {
            "CreateWorkspace": self._api_create_workspace,
            "UpdateWorkspace": self._api_update_workspace,
            "FetchWorkspace": lambda r: self._space(r.path_params["Sid"]).workspace.to_resource(),
            "ListWorkspace": self._api_list_workspaces,
            "DeleteWorkspace": lambda r: self._deleted(self.delete_workspace, r.path_params["Sid"]),
            "CreateActivity": self._api_create_activity,
            "UpdateActivity": self._api_update_activity,
            "FetchActivity": lambda r: self._api_activity(r).to_resource(),
            "DeleteActivity": lambda r: self._deleted(self.delete_activity, r.path_params["WorkspaceSid"],
                                                      r.path_params["Sid"]),
            "ListActivity": self._api_list_activities,
            "CreateTaskChannel": self._api_create_task_channel,
            "FetchTaskChannel": lambda r: self._api_task_channel(r).to_resource(),
            "ListTaskChannel": lambda r: [c.to_resource() for c in self._api_space(r).task_channels.values()],
            "UpdateTaskChannel": self._api_update_task_channel,
            "DeleteTaskChannel": lambda r: self._deleted(self.delete_task_channel, r.path_params["WorkspaceSid"],
                                                         r.path_params["Sid"]),
            "CreateWorker": self._api_create_worker,
            "UpdateWorker": self._api_update_worker,
            "FetchWorker": lambda r: self._api_worker(r, "Sid").to_resource(),
            "DeleteWorker": lambda r: self._deleted(self.delete_worker, r.path_params["WorkspaceSid"],
                                                    r.path_params["Sid"], if_match=_header(r, "If-Match")),
            "ListWorker": self._api_list_workers,
            "ListWorkerChannel": lambda r: [
                c.to_resource() for c in self._api_worker(r, "WorkerSid").channels.values()
            ],
            "FetchWorkerChannel": lambda r: self._api_worker_channel(r).to_resource(),
            "UpdateWorkerChannel": self._api_update_worker_channel,
            "ListWorkerReservation": self._api_list_worker_reservations,
            "FetchWorkerReservation": lambda r: self._api_worker_reservation(r).to_resource(via_worker=True),
            "UpdateWorkerReservation": self._api_update_worker_reservation,
            "CreateTaskQueue": self._api_create_task_queue,
            "UpdateTaskQueue": self._api_update_task_queue,
            "FetchTaskQueue": lambda r: self._api_queue(r).to_resource(),
            "DeleteTaskQueue": lambda r: self._deleted(self.delete_task_queue, r.path_params["WorkspaceSid"],
                                                       r.path_params["Sid"]),
            "ListTaskQueue": self._api_list_task_queues,
            "CreateWorkflow": self._api_create_workflow,
            "UpdateWorkflow": self._api_update_workflow,
            "FetchWorkflow": lambda r: self._api_workflow(r).to_resource(),
            "ListWorkflow": self._api_list_workflows,
            "DeleteWorkflow": lambda r: self._deleted(self.delete_workflow, r.path_params["WorkspaceSid"],
                                                      r.path_params["Sid"]),
            "CreateTask": self._api_create_task,
            "UpdateTask": self._api_update_task,
            "FetchTask": lambda r: self._task_result(self._api_task(r, "Sid")),
            "ListTask": self._api_list_tasks,
            "DeleteTask": lambda r: self._deleted(self.delete_task, r.path_params["WorkspaceSid"], r.path_params["Sid"],
                                                  if_match=_header(r, "If-Match")),
            "ListTaskReservation": self._api_list_task_reservations,
            "FetchTaskReservation": lambda r: self._api_task_reservation(r).to_resource(),
            "UpdateTaskReservation": self._api_update_task_reservation,
            "ListEvent": self._api_list_events,
            "FetchEvent": self._api_fetch_event,
        }
        return {operation: self._guarded(handler) for operation, handler in table.items()}

    def _guarded(self, handler: Callable[[ApiRequest], Any]) -> Handler:
        @functools.wraps(handler)
        def run(request: ApiRequest) -> Any:
            with self._operation():
                return handler(request)

        return run

    @staticmethod
    def _deleted(delete: Callable[..., None], *args: Any, **kwargs: Any) -> ApiResult:
        delete(*args, **kwargs)
        return ApiResult(None, 204)

    def _api_space(self, request: ApiRequest) -> _Space:
        return self._space(request.path_params["WorkspaceSid"])

    def _api_activity(self, request: ApiRequest) -> Activity:
        space, sid = self._api_space(request), request.path_params["Sid"]
        return self._find(space.activities, sid, request.path)

    def _api_task_channel(self, request: ApiRequest) -> TaskChannel:
        return self._find_channel(self._api_space(request), request.path_params["Sid"])

    def _api_worker(self, request: ApiRequest, key: str) -> Worker:
        return self._find(self._api_space(request).workers, request.path_params[key], request.path)

    def _api_worker_channel(self, request: ApiRequest) -> WorkerChannel:
        found = self._api_worker(request, "WorkerSid").channel(request.path_params["Sid"])
        if found is None:
            raise not_found(request.path)
        return found

    def _api_queue(self, request: ApiRequest) -> TaskQueue:
        return self._find(self._api_space(request).queues, request.path_params["Sid"], request.path)

    def _api_workflow(self, request: ApiRequest) -> Workflow:
        return self._find(self._api_space(request).workflows, request.path_params["Sid"], request.path)

    def _api_task(self, request: ApiRequest, key: str) -> Task:
        return self._find(self._api_space(request).tasks, request.path_params[key], request.path)

    def _task_result(self, task: Task, status: int = 200) -> ApiResult:
        return ApiResult(task.to_resource(), status, {"ETag": str(task.version)})

    def _api_task_reservation(self, request: ApiRequest) -> Reservation:
        task = self._api_task(request, "TaskSid")
        for reservation in task.reservations:
            if reservation.sid == request.path_params["Sid"]:
                return reservation
        raise not_found(request.path)

    def _api_worker_reservation(self, request: ApiRequest) -> Reservation:
        worker = self._api_worker(request, "WorkerSid")
        for reservation in worker.reservations:
            if reservation.sid == request.path_params["Sid"] and reservation.task.sid in self._tasks:
                return reservation
        raise not_found(request.path)

    # Workspaces, activities, task channels

    def _api_create_workspace(self, request: ApiRequest) -> ApiResult:
        multi_task = _boolean(request, "MultiTaskEnabled")
        workspace = self.create_workspace(
            _required(request, "FriendlyName"),
            event_callback_url=_text(request, "EventCallbackUrl"),
            events_filter=_text(request, "EventsFilter"),
            multi_task_enabled=True if multi_task is None else multi_task,
            prioritize_queue_order=_text(request, "PrioritizeQueueOrder") or "FIFO",
            template=_text(request, "Template"),
        )
        return ApiResult(workspace.to_resource(), 201)

    def _api_update_workspace(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_workspace(
            request.path_params["Sid"],
            friendly_name=_text(request, "FriendlyName"),
            event_callback_url=_text(request, "EventCallbackUrl"),
            events_filter=_text(request, "EventsFilter"),
            default_activity_sid=_text(request, "DefaultActivitySid"),
            timeout_activity_sid=_text(request, "TimeoutActivitySid"),
            multi_task_enabled=_boolean(request, "MultiTaskEnabled"),
            prioritize_queue_order=_text(request, "PrioritizeQueueOrder"),
        ).to_resource()

    def _api_list_workspaces(self, request: ApiRequest) -> list[dict[str, Any]]:
        name = _text(request, "FriendlyName")
        return [
            space.workspace.to_resource()
            for space in self._spaces.values()
            if name is None or space.workspace.friendly_name == name
        ]

    def _api_create_activity(self, request: ApiRequest) -> ApiResult:
        activity = self.create_activity(request.path_params["WorkspaceSid"], _required(request, "FriendlyName"),
                                        available=bool(_boolean(request, "Available")))
        return ApiResult(activity.to_resource(), 201)

    def _api_update_activity(self, request: ApiRequest) -> dict[str, Any]:
        activity = self._api_activity(request)
        name = _text(request, "FriendlyName")
        if name is not None:
            activity.friendly_name = name
            activity.date_updated = self.clock.now()
        return activity.to_resource()

    def _api_list_activities(self, request: ApiRequest) -> list[dict[str, Any]]:
        name, available = _text(request, "FriendlyName"), _boolean(request, "Available")
        return [
            activity.to_resource()
            for activity in self._api_space(request).activities.values()
            if name in (None, activity.friendly_name) and available in (None, activity.available)
        ]

    def _api_create_task_channel(self, request: ApiRequest) -> ApiResult:
        channel = self.create_task_channel(
            request.path_params["WorkspaceSid"],
            _required(request, "UniqueName"),
            friendly_name=_required(request, "FriendlyName"),
            channel_optimized_routing=bool(_boolean(request, "ChannelOptimizedRouting")),
        )
        return ApiResult(channel.to_resource(), 201)

    def _api_update_task_channel(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_task_channel(
            request.path_params["WorkspaceSid"], request.path_params["Sid"],
            friendly_name=_text(request, "FriendlyName"),
            channel_optimized_routing=_boolean(request, "ChannelOptimizedRouting"),
        ).to_resource()

    # Workers

    def _api_create_worker(self, request: ApiRequest) -> ApiResult:
        worker = self.create_worker(
            request.path_params["WorkspaceSid"],
            _required(request, "FriendlyName"),
            attributes=_text(request, "Attributes") or "{}",
            activity_sid=_text(request, "ActivitySid"),
        )
        return ApiResult(worker.to_resource(), 201)

    def _api_update_worker(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_worker(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            activity_sid=_text(request, "ActivitySid"),
            attributes=_text(request, "Attributes"),
            friendly_name=_text(request, "FriendlyName"),
            reject_pending_reservations=bool(_boolean(request, "RejectPendingReservations")),
            if_match=_header(request, "If-Match"),
        ).to_resource()

    def _api_list_workers(self, request: ApiRequest) -> list[dict[str, Any]]:
        space = self._api_space(request)
        workers: Iterable[Worker] = space.workers.values()
        available = _boolean(request, "Available")
        if available is not None:
            workers = [w for w in workers if w.available == available]
        if (sid := _text(request, "ActivitySid")) is not None:
            workers = [w for w in workers if w.activity.sid == sid]
        if (name := _text(request, "ActivityName")) is not None:
            workers = [w for w in workers if w.activity.friendly_name == name]
        if (name := _text(request, "FriendlyName")) is not None:
            workers = [w for w in workers if w.friendly_name == name]
        queue_sid, queue_name = _text(request, "TaskQueueSid"), _text(request, "TaskQueueName")
        if queue_sid is not None or queue_name is not None:
            queues = [q for q in space.queues.values()
                      if queue_sid in (None, q.sid) and queue_name in (None, q.friendly_name)]
            workers = [w for w in workers if any(queue.admits(w) for queue in queues)]
        if (text := _text(request, "TargetWorkersExpression")) is not None:
            expression = _compile(text, "worker", "Invalid TargetWorkersExpression")
            # The expression may also use these worker fields besides the attributes (ListWorker docs).
            workers = [w for w in workers if expression.matches(worker={
                **w.attributes, "sid": w.sid, "friendly_name": w.friendly_name,
                "activity_sid": w.activity.sid, "activity_name": w.activity.friendly_name,
            })]
        return [worker.to_resource() for worker in workers]

    def _api_update_worker_channel(self, request: ApiRequest) -> dict[str, Any]:
        channel = self._api_worker_channel(request)
        return self.update_worker_channel(
            request.path_params["WorkspaceSid"], request.path_params["WorkerSid"], channel.sid,
            capacity=_integer(request, "Capacity"), available=_boolean(request, "Available"),
        ).to_resource()

    def _api_list_worker_reservations(self, request: ApiRequest) -> list[dict[str, Any]]:
        status = _text(request, "ReservationStatus")
        return [
            reservation.to_resource(via_worker=True)
            for reservation in self._api_worker(request, "WorkerSid").reservations
            if reservation.task.sid in self._tasks and (status is None or reservation.status == status)
        ]

    def _api_update_worker_reservation(self, request: ApiRequest) -> dict[str, Any]:
        reservation = self._api_worker_reservation(request)
        return self._answer_request(request, reservation).to_resource(via_worker=True)

    def _answer_request(self, request: ApiRequest, reservation: Reservation) -> Reservation:
        status = _text(request, "ReservationStatus")
        if status is None:
            # Instructions (dequeue, call, conference, …) are voice features Baton never uses.
            raise invalid("ReservationStatus is required: instructions are not simulated")
        return self._answer(self._api_space(request), reservation, status, _text(request, "WorkerActivitySid"),
                            _header(request, "If-Match"))

    # Queues and workflows

    def _api_create_task_queue(self, request: ApiRequest) -> ApiResult:
        max_reserved_workers = _integer(request, "MaxReservedWorkers")
        queue = self.create_task_queue(
            request.path_params["WorkspaceSid"],
            _required(request, "FriendlyName"),
            target_workers=_text(request, "TargetWorkers") or ALL_WORKERS,
            task_order=_text(request, "TaskOrder") or "FIFO",
            max_reserved_workers=1 if max_reserved_workers is None else max_reserved_workers,
            reservation_activity_sid=_text(request, "ReservationActivitySid"),
            assignment_activity_sid=_text(request, "AssignmentActivitySid"),
        )
        return ApiResult(queue.to_resource(), 201)

    def _api_update_task_queue(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_task_queue(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            friendly_name=_text(request, "FriendlyName"),
            target_workers=_text(request, "TargetWorkers") or None,
            task_order=_text(request, "TaskOrder"),
            max_reserved_workers=_integer(request, "MaxReservedWorkers"),
            reservation_activity_sid=_text(request, "ReservationActivitySid"),
            assignment_activity_sid=_text(request, "AssignmentActivitySid"),
        ).to_resource()

    def _api_list_task_queues(self, request: ApiRequest) -> list[dict[str, Any]]:
        space = self._api_space(request)
        queues: Iterable[TaskQueue] = space.queues.values()
        if (name := _text(request, "FriendlyName")) is not None:
            queues = [q for q in queues if q.friendly_name == name]
        if (worker_sid := _text(request, "WorkerSid")) is not None:
            worker = space.workers.get(worker_sid)
            queues = [q for q in queues if worker is not None and q.admits(worker)]
        if (text := _text(request, "EvaluateWorkerAttributes")) is not None:
            attributes = _attributes(text, "EvaluateWorkerAttributes")
            queues = [q for q in queues if q.target_expression.matches(worker=attributes)]
        return [queue.to_resource() for queue in queues]

    def _api_create_workflow(self, request: ApiRequest) -> ApiResult:
        timeout = _integer(request, "TaskReservationTimeout")
        workflow = self.create_workflow(
            request.path_params["WorkspaceSid"],
            _required(request, "FriendlyName"),
            _required(request, "Configuration"),
            task_reservation_timeout=DEFAULT_RESERVATION_TIMEOUT if timeout is None else timeout,
            assignment_callback_url=_text(request, "AssignmentCallbackUrl"),
            fallback_assignment_callback_url=_text(request, "FallbackAssignmentCallbackUrl"),
        )
        return ApiResult(workflow.to_resource(), 201)

    def _api_update_workflow(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_workflow(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            friendly_name=_text(request, "FriendlyName"),
            configuration=_text(request, "Configuration"),
            task_reservation_timeout=_integer(request, "TaskReservationTimeout"),
            assignment_callback_url=_text(request, "AssignmentCallbackUrl"),
            fallback_assignment_callback_url=_text(request, "FallbackAssignmentCallbackUrl"),
            re_evaluate_tasks=bool(_boolean(request, "ReEvaluateTasks")),
        ).to_resource()

    def _api_list_workflows(self, request: ApiRequest) -> list[dict[str, Any]]:
        name = _text(request, "FriendlyName")
        return [
            workflow.to_resource()
            for workflow in self._api_space(request).workflows.values()
            if name is None or workflow.friendly_name == name
        ]

    # Tasks and reservations

    def _api_create_task(self, request: ApiRequest) -> ApiResult:
        task = self.create_task(
            request.path_params["WorkspaceSid"],
            attributes=_text(request, "Attributes") or "{}",
            workflow_sid=_text(request, "WorkflowSid"),
            task_channel=_text(request, "TaskChannel") or "default",
            priority=_integer(request, "Priority"),
            timeout=_integer(request, "Timeout"),
            task_queue_sid=_text(request, "TaskQueueSid"),
            routing_target=_text(request, "RoutingTarget"),
            ignore_capacity=_boolean(request, "IgnoreCapacity"),
        )
        return self._task_result(task, 201)

    def _api_update_task(self, request: ApiRequest) -> ApiResult:
        task = self.update_task(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            attributes=_text(request, "Attributes"),
            assignment_status=_text(request, "AssignmentStatus"),
            reason=_text(request, "Reason"),
            priority=_integer(request, "Priority"),
            task_channel=_text(request, "TaskChannel"),
            if_match=_header(request, "If-Match"),
        )
        return self._task_result(task)

    _ORDERING_KEYS: dict[str, Callable[[Task], Any]] = {
        "DateCreated": lambda task: task.date_created,
        "Priority": lambda task: task.priority,
    }

    def _api_list_tasks(self, request: ApiRequest) -> list[dict[str, Any]]:
        tasks: Sequence[Task] = list(self._api_space(request).tasks.values())
        if statuses := _values(request, "AssignmentStatus"):
            wanted = {status.strip() for value in statuses for status in value.split(",")}
            tasks = [t for t in tasks if t.assignment_status in wanted]
        if (priority := _integer(request, "Priority")) is not None:
            tasks = [t for t in tasks if t.priority == priority]
        for param, value_of in (
            ("WorkflowSid", lambda t: t.workflow and t.workflow.sid),
            ("WorkflowName", lambda t: t.workflow and t.workflow.friendly_name),
            ("TaskQueueSid", lambda t: t.queue and t.queue.sid),
            ("TaskQueueName", lambda t: t.queue and t.queue.friendly_name),
            ("RoutingTarget", lambda t: t.routing_target),
        ):
            if (wanted_value := _text(request, param)) is not None:
                tasks = [t for t in tasks if value_of(t) == wanted_value]
        if (text := _text(request, "EvaluateTaskAttributes")) is not None:
            expression = _compile(text, "task", "Invalid EvaluateTaskAttributes")
            tasks = [t for t in tasks if expression.matches(task=_task_scope(t))]
        # "Attribute:Order" pairs, comma-separated; the last listed is applied first (stable sorts).
        for clause in reversed((_text(request, "Ordering") or "DateCreated:asc").split(",")):
            key, _, order = clause.strip().partition(":")
            if key not in self._ORDERING_KEYS or order not in ("asc", "desc"):
                raise invalid(f"Invalid Ordering '{clause}'; expected DateCreated or Priority with :asc or :desc")
            tasks = sorted(tasks, key=self._ORDERING_KEYS[key], reverse=order == "desc")
        return [task.to_resource() for task in tasks]

    def _api_list_task_reservations(self, request: ApiRequest) -> list[dict[str, Any]]:
        status, worker_sid = _text(request, "ReservationStatus"), _text(request, "WorkerSid")
        return [
            reservation.to_resource()
            for reservation in self._api_task(request, "TaskSid").reservations
            if (status is None or reservation.status == status)
            and (worker_sid is None or reservation.worker.sid == worker_sid)
        ]

    def _api_update_task_reservation(self, request: ApiRequest) -> dict[str, Any]:
        return self._answer_request(request, self._api_task_reservation(request)).to_resource()

    # Events

    def _api_list_events(self, request: ApiRequest) -> list[dict[str, Any]]:
        events: Iterable[Event] = self._api_space(request).events
        start, end = _date_param(request, "StartDate"), _date_param(request, "EndDate")
        if start is None:
            minutes = _integer(request, "Minutes")
            start = self.clock.now() - 60 * (DEFAULT_EVENT_MINUTES if minutes is None else minutes)
        events = [e for e in events if e.timestamp >= start and (end is None or e.timestamp <= end)]
        if (event_type := _text(request, "EventType")) is not None:
            events = [e for e in events if e.event_type == event_type]
        for param in ("TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "WorkflowSid", "Sid"):
            if (wanted := _text(request, param)) is not None:
                events = [e for e in events if e.fields.get(param) == wanted]
        if (channel := _text(request, "TaskChannel")) is not None:
            events = [e for e in events
                      if channel in (e.fields.get("TaskChannelSid"), e.fields.get("TaskChannelUniqueName"))]
        return [event.to_resource() for event in reversed(events)]

    def _api_fetch_event(self, request: ApiRequest) -> dict[str, Any]:
        for event in self._api_space(request).events:
            if event.sid == request.path_params["Sid"]:
                return event.to_resource()
        raise not_found(request.path)
