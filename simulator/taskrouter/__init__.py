"""TaskRouter, simulated: workspaces, activities, workers, queues, workflows, tasks and reservations.

- `simulator.taskrouter.records`: one record per Twilio resource, rendering Twilio's JSON, and
  the limits and checks of their values.
- `simulator.taskrouter.service`: `TaskRouter`, the state of every workspace of one account, its
  Python API, its lock and its events.
- `simulator.taskrouter.routing`: workflow evaluation, offers, reservations' lifecycle and
  timeouts, as docs/twilio-behaviour.md reads Twilio's documentation.
- `simulator.taskrouter.rest`: the REST operations, served on top of the Python API.
"""

from simulator.taskrouter.records import (
    Activity,
    Event,
    Reservation,
    Task,
    TaskChannel,
    TaskQueue,
    Worker,
    WorkerChannel,
    Workflow,
    Workspace,
)
from simulator.taskrouter.service import TaskRouter

__all__ = [
    "Activity",
    "Event",
    "Reservation",
    "Task",
    "TaskChannel",
    "TaskQueue",
    "TaskRouter",
    "Worker",
    "WorkerChannel",
    "Workflow",
    "Workspace",
]
