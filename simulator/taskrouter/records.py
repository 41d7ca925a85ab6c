"""TaskRouter's resources as the simulator keeps them: one mutable record per Twilio resource.

Each record holds one workspace's activity, task channel, worker (and its channels), queue,
workflow (and its parsed routing), task, reservation or event, and renders Twilio's JSON with
``to_resource()``. `Space` gathers a workspace and everything in it. The records hold state only:
`simulator.taskrouter.service` changes them, `simulator.taskrouter.routing` moves tasks through
them. The checks every value of theirs must pass (attributes, expressions, ETags) are here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.core import Clock, SimError, invalid, iso_date
from simulator.expressions import Expression, ExpressionError, compile_expression

BASE_URL = "https://taskrouter.twilio.com/v1"

# Twilio's defaults and limits for these resources.
ALL_WORKERS = "1==1"
DEFAULT_RESERVATION_TIMEOUT = 120
MAX_RESERVATION_TIMEOUT = 86_400
DEFAULT_TASK_TTL = 86_400
MAX_TASK_TTL = 1_209_600
MAX_ATTRIBUTES_LENGTH = 4096
MAX_PRIORITY = 2**31 - 1
MAX_RESERVED_WORKERS = 50

# Reservations that consume a worker channel's capacity, and those that count as assigned tasks.
HOLDING = frozenset({"pending", "accepted", "wrapping"})
ASSIGNED = frozenset({"accepted", "wrapping"})
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
        return self.target_expression.matches(worker=worker_scope(worker))

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
class Progress:
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
    progress: Progress | None = field(default=None, repr=False)
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
class Space:
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


def task_scope(task: Task) -> dict[str, Any]:
    """What a task's expressions see of ``task``: its attributes and its sid."""
    return {**task.attributes, "sid": task.sid}


def worker_scope(worker: Worker) -> dict[str, Any]:
    """What a worker's expressions see of ``worker``: its attributes and its sid."""
    return {**worker.attributes, "sid": worker.sid}


def parse_expression(text: str, default_scope: str, what: str) -> Expression:
    """Compile a TaskRouter expression; a malformed one is a 400 that starts with ``what``."""
    try:
        return compile_expression(text, default_scope)
    except ExpressionError as exc:
        raise invalid(f"{what}: {exc}") from None


def decode_attributes(value: str | Mapping[str, Any], what: str = "Attributes") -> dict[str, Any]:
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


def check_version(version: int, if_match: str | None, path: str) -> None:
    """Twilio's optimistic concurrency: an If-Match that is not the current ETag fails with 412."""
    if if_match is None or if_match.strip() == "*":
        return
    if if_match.strip().removeprefix("W/").strip('"') != str(version):
        raise SimError(412, 20412, f"The If-Match header {if_match} does not match the current ETag of {path}")

