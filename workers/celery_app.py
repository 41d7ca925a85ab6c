"""All Celery plumbing: the application factory and its at-least-once configuration.

Every task may run twice (late acks, requeue on a lost worker, redelivery after the visibility
timeout), so every task is idempotent. The numbers below are chosen together: no countdown,
retry delay or task time limit may come near the visibility timeout, or a message is delivered
again while its first copy still waits or runs (celery-webhooks-facts.md §1).
"""

from __future__ import annotations

from celery import Celery

from baton.config import Config

# Task names. The web app enqueues by name (``send_job``), so it never imports the workers' code.
RUN_TRANSFER = "baton.run_transfer"              # (transfer_id): carry out the transfer's outbox
TASKROUTER_EVENT = "baton.taskrouter_event"      # (transfer_id, fields): a TaskRouter event of its new task
CONVERSATION_EVENT = "baton.conversation_event"  # (transfer_id, fields): an event of its conversation
CANCEL_TRANSFER = "baton.cancel_transfer"        # (transfer_id, by_worker_sid): the sender canceled it
LEAVE_TRANSFER = "baton.leave_transfer"          # (transfer_id, by_worker_sid): the warm sender leaves
TRANSFER_DEADLINE = "baton.transfer_deadline"    # (transfer_id): enqueued with countdown=transfer_timeout_s
RECONCILE = "baton.reconcile"                    # (): every reconcile_every_s, from Celery beat
RECONCILE_TRANSFER = "baton.reconcile_transfer"  # (transfer_id): catch up one transfer that stopped moving

VISIBILITY_TIMEOUT_S = 3600
TASK_TIME_LIMIT_S = 120
TASK_SOFT_TIME_LIMIT_S = 90
MAX_RETRY_DELAY_S = 300


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
        worker_hijack_root_logger=False,
    )
    celery.conf.beat_schedule = {
        "reconcile": {"task": RECONCILE, "schedule": config.reconcile_every_s,
                      # A tick nobody ran in time is replaced by the next one, never piled up.
                      "options": {"expires": config.reconcile_every_s}},
    }
    celery.baton_config = config  # the tasks build their engine from it, in each worker process
    return celery


def send_job(celery: Celery, name: str, *args: object, countdown: float | None = None) -> None:
    """Enqueue the task ``name`` with JSON arguments (ids and small dicts only)."""
    celery.send_task(name, args=args, countdown=countdown)
