"""TaskRouter's routing, simulated: workflow evaluation, offers, reservations' lifecycle, timeouts.

`Router` is the half of `simulator.taskrouter.service.TaskRouter` that moves tasks: it matches a
task against its workflow, walks the filter's steps, chooses workers and reserves the task for
them, answers reservations, and fires the reservation, step and TTL timers. `parse_configuration`
turns a workflow's configuration into the `Routing` it follows.

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

import json
from collections.abc import Iterator, Mapping
from typing import Any

from simulator.core import Clock, SimError, invalid, new_sid
from simulator.profiles import Profile
from simulator.taskrouter.records import (
    ASSIGNED,
    DEFAULT_RESERVATION_TIMEOUT,
    HOLDING,
    Activity,
    Filter,
    Progress,
    Reservation,
    Routing,
    Space,
    Target,
    Task,
    TaskQueue,
    Worker,
    Workflow,
    check_version,
    parse_expression,
    task_scope,
    worker_scope,
)

# "Tasks are automatically canceled after 1,000 rejections" (TaskRouter Reservation docs).
MAX_ASSIGNMENTS = 1000

# The reasons Twilio gives a task it cancels itself.
TTL_EXCEEDED = "Task TTL Exceeded"
MAX_ASSIGNMENTS_EXCEEDED = "Max assignment count exceeded"
WORKFLOW_TIMEOUT = "Workflow Timeout"


# --- Workflow configuration ---------------------------------------------------------------------


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


def parse_configuration(text: str, queues: Mapping[str, TaskQueue]) -> Routing:
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
        expression = parse_expression(raw["expression"], "task", f"Invalid workflow configuration: {where}")
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
                target_expression = parse_expression(spec["expression"], "task",
                                                     f"Invalid workflow configuration: {there}")
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


# --- The router ---------------------------------------------------------------------------------


class Router:
    """Routing, offers, reservations and timeouts of `TaskRouter`, its only subclass.

    It changes the records `TaskRouter` keeps and reports through its events, timers and lookups
    (``_space``, ``_task_event``, ``_reservation_event``, ``_set_activity``, ``_activity_param``,
    ``_after``, ``_elapsed``); every method runs inside one of `TaskRouter`'s operations.
    """

    account_sid: str
    clock: Clock
    profile: Profile
    _reservations: dict[str, Reservation]
    _offers: Iterator[int]  # orders the offers, for "longest idle"

    # --- A new task's routing ---

    def _routing_for(
        self, space: Space, workflow_sid: str | None, queue_sid: str | None, routing_target: str | None,
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

    # --- Task status ---

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
        reservation = next((r for r in task.reservations if r.status in ASSIGNED), None)
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

    def _answer(
        self, space: Space, reservation: Reservation, status: str, worker_activity_sid: str | None,
        if_match: str | None,
    ) -> Reservation:
        check_version(reservation.version, if_match, f"{reservation.task.url}/Reservations/{reservation.sid}")
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
        if status in ("wrapping", "completed") and reservation.status in ASSIGNED:
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
        if status in HOLDING:
            channel.holding.add(reservation.sid)
        if status in ASSIGNED:
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
        scope = task_scope(task)
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
        task.progress = Progress(routing, matched, into, self.clock.now())
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

    def _step_expired(self, task: Task, progress: Progress, index: int) -> None:
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

    def _dispatch(self, space: Space) -> None:
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
        task_values = task_scope(task)
        best = None
        for worker in self._space(task.workspace_sid).workers.values():
            if worker.sid in passed_over or (known is not None and getattr(worker, known[0]) != known[1]):
                continue
            if not self._has_room(worker, task):
                continue
            worker_values = worker_scope(worker)
            if target.queue is not None and not target.queue.target_expression.matches(worker=worker_values):
                continue
            if target.expression is not None and not target.expression.matches(task=task_values, worker=worker_values):
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
