"""All Celery plumbing: the application factory and its at-least-once configuration.

Every task may run twice (late acks, requeue on a lost worker, redelivery after the visibility
timeout), so every task is idempotent. The numbers below are chosen together: no countdown,
retry delay or task time limit may come near the visibility timeout, or a message is delivered
again while its first copy still waits or runs (Celery's Redis broker documentation, "Visibility timeout").
"""

from __future__ import annotations

import os
import sys
import threading
import uuid

from celery import Celery, Task, current_app, signals
from kombu import Producer

from baton.infrastructure import logs, metrics
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store

# Task names. The web app enqueues by name (``send_job``), so it never imports the workers' code.
RUN_TRANSFER = "baton.run_transfer"              # (transfer_id): carry out the transfer's outbox
TRANSFER_INBOX = "baton.transfer_inbox"          # (transfer_id): apply the webhook events waiting in its inbox
# (transfer_id, fields): one event, as releases before the inbox enqueued them; kept so that a deploy loses none
TASKROUTER_EVENT = "baton.taskrouter_event"
CONVERSATION_EVENT = "baton.conversation_event"
CANCEL_TRANSFER = "baton.cancel_transfer"        # (transfer_id, by_worker_sid): the sender canceled it
LEAVE_TRANSFER = "baton.leave_transfer"          # (transfer_id, by_worker_sid): the warm sender leaves
TRANSFER_DEADLINE = "baton.transfer_deadline"    # (transfer_id): its transfer_timeout_s has passed
SWEEP_DEADLINES = "baton.sweep_deadlines"        # (): every DEADLINE_SWEEP_S, from Celery beat
RECONCILE = "baton.reconcile"                    # (): every reconcile_every_s, from Celery beat
RECONCILE_TRANSFER = "baton.reconcile_transfer"  # (transfer_id): catch up one transfer that stopped moving

# Tasks whose first argument is a transfer id: everything but the reconciliation's periodic sweep.
TRANSFER_TASKS = frozenset({RUN_TRANSFER, TRANSFER_INBOX, TASKROUTER_EVENT, CONVERSATION_EVENT, CANCEL_TRANSFER,
                            LEAVE_TRANSFER, TRANSFER_DEADLINE, RECONCILE_TRANSFER})
# The message header that carries the request id of the web request (or task) that enqueued a task.
REQUEST_ID_HEADER = "baton_request_id"

VISIBILITY_TIMEOUT_S = 3600
TASK_TIME_LIMIT_S = 120
TASK_SOFT_TIME_LIMIT_S = 90
# On Redis, kombu keeps one list per priority step and serves the lowest number first; messages
# without a priority go to the first. A new transfer waits behind the events of the transfers under
# way: past capacity, offers in progress are still re-routed in time and transfers keep completing at
# the pace the stack carries, instead of all of them slowing down together (a rejected offer that waits
# is offered to the same agent again and again, each time two more events to handle).
NEW_TRANSFER_PRIORITY = 6
# Deadlines are kept in Redis (baton.infrastructure.store) and swept by beat, not sent as countdown messages: with Redis
# as the broker a worker holds every countdown message in memory until it is due (one per transfer of the
# last transfer_timeout_s), and such messages can be lost when a worker restarts (kombu#533).
DEADLINE_SWEEP_S = 5.0
# A transfer still unfinished this long after its deadline task was enqueued gets another one.
DEADLINE_AGAIN_AFTER_S = 60.0


def create_celery(config: Config) -> Celery:
    """The Celery application for ``config``, used by the worker and (to enqueue) by the web app."""
    celery = Celery("baton", broker=config.redis_url, include=["workers.tasks"])
    transport_options = {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 25,
    }
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT_S,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        # The visibility timeout must be the same everywhere Celery reads it (celery#7651).
        result_backend_transport_options=transport_options,
        visibility_timeout=VISIBILITY_TIMEOUT_S,
        worker_soft_shutdown_timeout=config.worker_soft_shutdown_s,
        worker_enable_soft_shutdown_on_idle=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Celery's consumer, fixed so that losing Redis while holding a message does not stop the worker.
        worker_consumer="workers.consumer:Consumer",
        worker_hijack_root_logger=False,
        # Logs are JSON lines on stdout (baton.infrastructure.logs); a print() is left as it is, not logged again.
        worker_redirect_stdouts=False,
    )
    celery.conf.beat_schedule = {
        "reconcile": {"task": RECONCILE, "schedule": config.reconcile_every_s,
                      # A tick nobody ran in time is replaced by the next one, never piled up.
                      "options": {"expires": config.reconcile_every_s}},
        "deadlines": {"task": SWEEP_DEADLINES, "schedule": DEADLINE_SWEEP_S, "options": {"expires": DEADLINE_SWEEP_S}},
    }
    celery.baton_config = config  # the tasks build their engine from it, in each worker process
    celery.baton_producers = threading.local()  # kept_producer's, one per thread
    return celery


def send_job(celery: Celery, name: str, *args: object, countdown: float | None = None,
             priority: int | None = None) -> None:
    """Enqueue the task ``name`` with JSON arguments (ids and small dicts only); ``priority``: see
    ``NEW_TRANSFER_PRIORITY``.

    The message's ``argsrepr`` (what Celery shows of the arguments, in events and monitoring tools)
    is only the first argument, the transfer id: the event's fields may carry a customer's address,
    and Celery's own ``saferepr`` of them costs a third of a publish.
    """
    celery.send_task(name, args=args, countdown=countdown, priority=priority, argsrepr=repr(args[:1]),
                     kwargsrepr="{}", producer=kept_producer(celery))


def kept_producer(celery: Celery) -> Producer:
    """The producer this process and thread publish with, on a broker connection of its own, made once and kept.

    ``send_task`` without one takes a producer from Celery's pool and gives it back for every message;
    the web enqueues one per transfer event. The pool is not the place to keep one: kombu shares it
    between every app of the same broker URL, at most ``broker_pool_limit`` producers. A kombu
    producer is not shared between threads, nor across a fork: each thread of each process makes its
    own, as the pool would (``app.amqp.Producer`` on ``app.connection_for_write()``). Publishing keeps
    Celery's retry policy, which reconnects after a lost connection.
    """
    kept = celery.baton_producers
    if getattr(kept, "pid", None) != os.getpid():
        kept.producer = celery.amqp.Producer(celery.connection_for_write())
        kept.pid = os.getpid()
    return kept.producer


# Logs and metrics, wired through Celery's signals (a receiver is called only in a worker or beat process,
# except before_task_publish, which also runs in the web when it enqueues).


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    """Baton's JSON logs for the worker or beat; with a receiver here, Celery installs no handler of its own."""
    config: Config | None = getattr(current_app, "baton_config", None)
    # Celery says which of its commands runs only later (beat_init comes after beat's first line).
    process = "beat" if "beat" in sys.argv[1:] else "worker"
    logs.configure_logging(process, config.log_level if config else "INFO")


@signals.worker_init.connect
def _record_metrics_in_redis(sender: object = None, **_: object) -> None:
    """The worker's metrics go to Redis, where the web's /metrics reads them (baton.infrastructure.metrics)."""
    config: Config = sender.app.baton_config  # type: ignore[attr-defined]
    metrics.use(metrics.RedisSink(Store.from_config(config)))


@signals.before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    request_id = logs.bound("request_id")
    if request_id and headers is not None:
        headers[REQUEST_ID_HEADER] = request_id


@signals.task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Task | None = None, args: tuple = (), **_: object) -> None:
    """The ids of the task's logs: its request id (from the message, else a new one) and its transfer, task, event."""
    logs.clear()
    request_id = task.request.get(REQUEST_ID_HEADER) if task is not None else None
    name = task.name if task is not None else None
    logs.bind(request_id=request_id or str(uuid.uuid4()), celery_task=name, celery_task_id=task_id)
    if name in TRANSFER_TASKS and args:
        logs.bind(transfer_id=args[0])
    if name == TASKROUTER_EVENT and len(args) > 1 and isinstance(args[1], dict):
        logs.bind(task_sid=args[1].get("TaskSid"), event_sid=args[1].get("Sid"))


@signals.task_postrun.connect
def _end_task(**_: object) -> None:
    logs.clear()


@signals.worker_process_shutdown.connect
def _flush_metrics(**_: object) -> None:
    metrics.flush()
