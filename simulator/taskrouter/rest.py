"""TaskRouter's REST operations, as the simulator serves them, on top of `TaskRouter`'s Python API.

`RestHandlers.handlers` maps each operation id of Twilio's ``twilio_taskrouter_v1`` description
that the simulator serves to a handler: it reads the request's parameters (`simulator.params`),
calls the Python API of `simulator.taskrouter.service.TaskRouter`, and answers the resources in
Twilio's JSON. List filters and orderings, which the Python API does not have, are applied here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from simulator.core import ApiRequest, ApiResult, Handler, invalid, not_found
from simulator.params import (
    boolean_param,
    date_param,
    header,
    integer_param,
    list_param,
    required_param,
    text_param,
)
from simulator.taskrouter.records import (
    ALL_WORKERS,
    DEFAULT_RESERVATION_TIMEOUT,
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
    decode_attributes,
    parse_expression,
    task_scope,
)

# How far back ListEvent looks when the request gives neither StartDate nor Minutes.
DEFAULT_EVENT_MINUTES = 15


class RestHandlers:
    """The REST handlers of `TaskRouter`, its only subclass.

    Each handler runs as one of `TaskRouter`'s operations and calls its Python API, and its lookups
    (``_space``, ``_find``, ``_find_channel``) and indexes (``_spaces``, ``_tasks``) for what that
    API does not return; a reservation is answered through `Router`'s ``_answer``.
    """

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
                                                    r.path_params["Sid"], if_match=header(r, "If-Match")),
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
                                                  if_match=header(r, "If-Match")),
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

    def _api_space(self, request: ApiRequest) -> Space:
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
        multi_task = boolean_param(request, "MultiTaskEnabled")
        workspace = self.create_workspace(
            required_param(request, "FriendlyName"),
            event_callback_url=text_param(request, "EventCallbackUrl"),
            events_filter=text_param(request, "EventsFilter"),
            multi_task_enabled=True if multi_task is None else multi_task,
            prioritize_queue_order=text_param(request, "PrioritizeQueueOrder") or "FIFO",
            template=text_param(request, "Template"),
        )
        return ApiResult(workspace.to_resource(), 201)

    def _api_update_workspace(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_workspace(
            request.path_params["Sid"],
            friendly_name=text_param(request, "FriendlyName"),
            event_callback_url=text_param(request, "EventCallbackUrl"),
            events_filter=text_param(request, "EventsFilter"),
            default_activity_sid=text_param(request, "DefaultActivitySid"),
            timeout_activity_sid=text_param(request, "TimeoutActivitySid"),
            multi_task_enabled=boolean_param(request, "MultiTaskEnabled"),
            prioritize_queue_order=text_param(request, "PrioritizeQueueOrder"),
        ).to_resource()

    def _api_list_workspaces(self, request: ApiRequest) -> list[dict[str, Any]]:
        name = text_param(request, "FriendlyName")
        return [
            space.workspace.to_resource()
            for space in self._spaces.values()
            if name is None or space.workspace.friendly_name == name
        ]

    def _api_create_activity(self, request: ApiRequest) -> ApiResult:
        activity = self.create_activity(request.path_params["WorkspaceSid"], required_param(request, "FriendlyName"),
                                        available=bool(boolean_param(request, "Available")))
        return ApiResult(activity.to_resource(), 201)

    def _api_update_activity(self, request: ApiRequest) -> dict[str, Any]:
        activity = self._api_activity(request)
        name = text_param(request, "FriendlyName")
        if name is not None:
            activity.friendly_name = name
            activity.date_updated = self.clock.now()
        return activity.to_resource()

    def _api_list_activities(self, request: ApiRequest) -> list[dict[str, Any]]:
        name, available = text_param(request, "FriendlyName"), boolean_param(request, "Available")
        return [
            activity.to_resource()
            for activity in self._api_space(request).activities.values()
            if name in (None, activity.friendly_name) and available in (None, activity.available)
        ]

    def _api_create_task_channel(self, request: ApiRequest) -> ApiResult:
        channel = self.create_task_channel(
            request.path_params["WorkspaceSid"],
            required_param(request, "UniqueName"),
            friendly_name=required_param(request, "FriendlyName"),
            channel_optimized_routing=bool(boolean_param(request, "ChannelOptimizedRouting")),
        )
        return ApiResult(channel.to_resource(), 201)

    def _api_update_task_channel(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_task_channel(
            request.path_params["WorkspaceSid"], request.path_params["Sid"],
            friendly_name=text_param(request, "FriendlyName"),
            channel_optimized_routing=boolean_param(request, "ChannelOptimizedRouting"),
        ).to_resource()

    # Workers

    def _api_create_worker(self, request: ApiRequest) -> ApiResult:
        worker = self.create_worker(
            request.path_params["WorkspaceSid"],
            required_param(request, "FriendlyName"),
            attributes=text_param(request, "Attributes") or "{}",
            activity_sid=text_param(request, "ActivitySid"),
        )
        return ApiResult(worker.to_resource(), 201)

    def _api_update_worker(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_worker(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            activity_sid=text_param(request, "ActivitySid"),
            attributes=text_param(request, "Attributes"),
            friendly_name=text_param(request, "FriendlyName"),
            reject_pending_reservations=bool(boolean_param(request, "RejectPendingReservations")),
            if_match=header(request, "If-Match"),
        ).to_resource()

    def _api_list_workers(self, request: ApiRequest) -> list[dict[str, Any]]:
        space = self._api_space(request)
        workers: Iterable[Worker] = space.workers.values()
        available = boolean_param(request, "Available")
        if available is not None:
            workers = [w for w in workers if w.available == available]
        if (sid := text_param(request, "ActivitySid")) is not None:
            workers = [w for w in workers if w.activity.sid == sid]
        if (name := text_param(request, "ActivityName")) is not None:
            workers = [w for w in workers if w.activity.friendly_name == name]
        if (name := text_param(request, "FriendlyName")) is not None:
            workers = [w for w in workers if w.friendly_name == name]
        queue_sid, queue_name = text_param(request, "TaskQueueSid"), text_param(request, "TaskQueueName")
        if queue_sid is not None or queue_name is not None:
            queues = [q for q in space.queues.values()
                      if queue_sid in (None, q.sid) and queue_name in (None, q.friendly_name)]
            workers = [w for w in workers if any(queue.admits(w) for queue in queues)]
        if (text := text_param(request, "TargetWorkersExpression")) is not None:
            expression = parse_expression(text, "worker", "Invalid TargetWorkersExpression")
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
            capacity=integer_param(request, "Capacity"), available=boolean_param(request, "Available"),
        ).to_resource()

    def _api_list_worker_reservations(self, request: ApiRequest) -> list[dict[str, Any]]:
        status = text_param(request, "ReservationStatus")
        return [
            reservation.to_resource(via_worker=True)
            for reservation in self._api_worker(request, "WorkerSid").reservations
            if reservation.task.sid in self._tasks and (status is None or reservation.status == status)
        ]

    def _api_update_worker_reservation(self, request: ApiRequest) -> dict[str, Any]:
        reservation = self._api_worker_reservation(request)
        return self._answer_request(request, reservation).to_resource(via_worker=True)

    def _answer_request(self, request: ApiRequest, reservation: Reservation) -> Reservation:
        status = text_param(request, "ReservationStatus")
        if status is None:
            # Instructions (dequeue, call, conference, …) are voice features Baton never uses.
            raise invalid("ReservationStatus is required: instructions are not simulated")
        return self._answer(self._api_space(request), reservation, status, text_param(request, "WorkerActivitySid"),
                            header(request, "If-Match"))

    # Queues and workflows

    def _api_create_task_queue(self, request: ApiRequest) -> ApiResult:
        max_reserved_workers = integer_param(request, "MaxReservedWorkers")
        queue = self.create_task_queue(
            request.path_params["WorkspaceSid"],
            required_param(request, "FriendlyName"),
            target_workers=text_param(request, "TargetWorkers") or ALL_WORKERS,
            task_order=text_param(request, "TaskOrder") or "FIFO",
            max_reserved_workers=1 if max_reserved_workers is None else max_reserved_workers,
            reservation_activity_sid=text_param(request, "ReservationActivitySid"),
            assignment_activity_sid=text_param(request, "AssignmentActivitySid"),
        )
        return ApiResult(queue.to_resource(), 201)

    def _api_update_task_queue(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_task_queue(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            friendly_name=text_param(request, "FriendlyName"),
            target_workers=text_param(request, "TargetWorkers") or None,
            task_order=text_param(request, "TaskOrder"),
            max_reserved_workers=integer_param(request, "MaxReservedWorkers"),
            reservation_activity_sid=text_param(request, "ReservationActivitySid"),
            assignment_activity_sid=text_param(request, "AssignmentActivitySid"),
        ).to_resource()

    def _api_list_task_queues(self, request: ApiRequest) -> list[dict[str, Any]]:
        space = self._api_space(request)
        queues: Iterable[TaskQueue] = space.queues.values()
        if (name := text_param(request, "FriendlyName")) is not None:
            queues = [q for q in queues if q.friendly_name == name]
        if (worker_sid := text_param(request, "WorkerSid")) is not None:
            worker = space.workers.get(worker_sid)
            queues = [q for q in queues if worker is not None and q.admits(worker)]
        if (text := text_param(request, "EvaluateWorkerAttributes")) is not None:
            attributes = decode_attributes(text, "EvaluateWorkerAttributes")
            queues = [q for q in queues if q.target_expression.matches(worker=attributes)]
        return [queue.to_resource() for queue in queues]

    def _api_create_workflow(self, request: ApiRequest) -> ApiResult:
        timeout = integer_param(request, "TaskReservationTimeout")
        workflow = self.create_workflow(
            request.path_params["WorkspaceSid"],
            required_param(request, "FriendlyName"),
            required_param(request, "Configuration"),
            task_reservation_timeout=DEFAULT_RESERVATION_TIMEOUT if timeout is None else timeout,
            assignment_callback_url=text_param(request, "AssignmentCallbackUrl"),
            fallback_assignment_callback_url=text_param(request, "FallbackAssignmentCallbackUrl"),
        )
        return ApiResult(workflow.to_resource(), 201)

    def _api_update_workflow(self, request: ApiRequest) -> dict[str, Any]:
        return self.update_workflow(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            friendly_name=text_param(request, "FriendlyName"),
            configuration=text_param(request, "Configuration"),
            task_reservation_timeout=integer_param(request, "TaskReservationTimeout"),
            assignment_callback_url=text_param(request, "AssignmentCallbackUrl"),
            fallback_assignment_callback_url=text_param(request, "FallbackAssignmentCallbackUrl"),
            re_evaluate_tasks=bool(boolean_param(request, "ReEvaluateTasks")),
        ).to_resource()

    def _api_list_workflows(self, request: ApiRequest) -> list[dict[str, Any]]:
        name = text_param(request, "FriendlyName")
        return [
            workflow.to_resource()
            for workflow in self._api_space(request).workflows.values()
            if name is None or workflow.friendly_name == name
        ]

    # Tasks and reservations

    def _api_create_task(self, request: ApiRequest) -> ApiResult:
        task = self.create_task(
            request.path_params["WorkspaceSid"],
            attributes=text_param(request, "Attributes") or "{}",
            workflow_sid=text_param(request, "WorkflowSid"),
            task_channel=text_param(request, "TaskChannel") or "default",
            priority=integer_param(request, "Priority"),
            timeout=integer_param(request, "Timeout"),
            task_queue_sid=text_param(request, "TaskQueueSid"),
            routing_target=text_param(request, "RoutingTarget"),
            ignore_capacity=boolean_param(request, "IgnoreCapacity"),
        )
        return self._task_result(task, 201)

    def _api_update_task(self, request: ApiRequest) -> ApiResult:
        task = self.update_task(
            request.path_params["WorkspaceSid"],
            request.path_params["Sid"],
            attributes=text_param(request, "Attributes"),
            assignment_status=text_param(request, "AssignmentStatus"),
            reason=text_param(request, "Reason"),
            priority=integer_param(request, "Priority"),
            task_channel=text_param(request, "TaskChannel"),
            if_match=header(request, "If-Match"),
        )
        return self._task_result(task)

    _ORDERING_KEYS: dict[str, Callable[[Task], Any]] = {
        "DateCreated": lambda task: task.date_created,
        "Priority": lambda task: task.priority,
    }

    def _api_list_tasks(self, request: ApiRequest) -> list[dict[str, Any]]:
        tasks: Sequence[Task] = list(self._api_space(request).tasks.values())
        if statuses := list_param(request, "AssignmentStatus"):
            wanted = {status.strip() for value in statuses for status in value.split(",")}
            tasks = [t for t in tasks if t.assignment_status in wanted]
        if (priority := integer_param(request, "Priority")) is not None:
            tasks = [t for t in tasks if t.priority == priority]
        for param, value_of in (
            ("WorkflowSid", lambda t: t.workflow and t.workflow.sid),
            ("WorkflowName", lambda t: t.workflow and t.workflow.friendly_name),
            ("TaskQueueSid", lambda t: t.queue and t.queue.sid),
            ("TaskQueueName", lambda t: t.queue and t.queue.friendly_name),
            ("RoutingTarget", lambda t: t.routing_target),
        ):
            if (wanted_value := text_param(request, param)) is not None:
                tasks = [t for t in tasks if value_of(t) == wanted_value]
        if (text := text_param(request, "EvaluateTaskAttributes")) is not None:
            expression = parse_expression(text, "task", "Invalid EvaluateTaskAttributes")
            tasks = [t for t in tasks if expression.matches(task=task_scope(t))]
        # "Attribute:Order" pairs, comma-separated; the last listed is applied first (stable sorts).
        for clause in reversed((text_param(request, "Ordering") or "DateCreated:asc").split(",")):
            key, _, order = clause.strip().partition(":")
            if key not in self._ORDERING_KEYS or order not in ("asc", "desc"):
                raise invalid(f"Invalid Ordering '{clause}'; expected DateCreated or Priority with :asc or :desc")
            tasks = sorted(tasks, key=self._ORDERING_KEYS[key], reverse=order == "desc")
        return [task.to_resource() for task in tasks]

    def _api_list_task_reservations(self, request: ApiRequest) -> list[dict[str, Any]]:
        status, worker_sid = text_param(request, "ReservationStatus"), text_param(request, "WorkerSid")
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
        start, end = date_param(request, "StartDate"), date_param(request, "EndDate")
        if start is None:
            minutes = integer_param(request, "Minutes")
            start = self.clock.now() - 60 * (DEFAULT_EVENT_MINUTES if minutes is None else minutes)
        events = [e for e in events if e.timestamp >= start and (end is None or e.timestamp <= end)]
        if (event_type := text_param(request, "EventType")) is not None:
            events = [e for e in events if e.event_type == event_type]
        for param in ("TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "WorkflowSid", "Sid"):
            if (wanted := text_param(request, param)) is not None:
                events = [e for e in events if e.fields.get(param) == wanted]
        if (channel := text_param(request, "TaskChannel")) is not None:
            events = [e for e in events
                      if channel in (e.fields.get("TaskChannelSid"), e.fields.get("TaskChannelUniqueName"))]
        return [event.to_resource() for event in reversed(events)]

    def _api_fetch_event(self, request: ApiRequest) -> dict[str, Any]:
        for event in self._api_space(request).events:
            if event.sid == request.path_params["Sid"]:
                return event.to_resource()
        raise not_found(request.path)
