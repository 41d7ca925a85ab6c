"""Baton's Celery tasks: each rebuilds its arguments and calls one method of the transfer engine.

Retry policy, in one place: a Twilio error worth retrying is retried by the engine itself (the
outbox stays in Redis and ``run_transfer`` is enqueued again after the backoff the engine chose);
Redis being away, or another worker holding the transfer's lock for too long, retries the task
as it is, with exponential backoff, since nothing of it was applied.
"""

from __future__ import annotations

import functools
import time

import redis
from celery import Task, shared_task

from baton.infrastructure.engine import MAX_RETRY_DELAY_S, Outcome, TransferEngine
from baton.infrastructure.store import Store
from baton.infrastructure.twilio_gateway import TwilioGateway
from workers.celery_app import (
    CANCEL_TRANSFER,
    CONVERSATION_EVENT,
    DEADLINE_AGAIN_AFTER_S,
    LEAVE_TRANSFER,
    RECONCILE,
    RECONCILE_TRANSFER,
    RUN_TRANSFER,
    SWEEP_DEADLINES,
    TASKROUTER_EVENT,
    TRANSFER_DEADLINE,
    TRANSFER_INBOX,
    send_job,
)

RETRY_POLICY = dict(autoretry_for=(redis.RedisError,), retry_backoff=True, retry_backoff_max=MAX_RETRY_DELAY_S,
                    retry_jitter=True, max_retries=20, bind=True)


@functools.cache
def engine() -> TransferEngine:
    """One engine per worker process, built after the fork, with pooled Redis and HTTP connections."""
    from celery import current_app

    config = current_app.baton_config
    return TransferEngine(Store.from_config(config), TwilioGateway.from_config(config), config)


def _follow(task: Task, transfer_id: str, outcome: Outcome) -> None:
    if outcome.retry_in is not None:
        send_job(task.app, RUN_TRANSFER, transfer_id, countdown=outcome.retry_in)
    if outcome.inbox_waiting:
        send_job(task.app, TRANSFER_INBOX, transfer_id)


@shared_task(name=RUN_TRANSFER, **RETRY_POLICY)
def run_transfer(self: Task, transfer_id: str) -> None:
    _follow(self, transfer_id, engine().run(transfer_id))


@shared_task(name=TRANSFER_INBOX, **RETRY_POLICY)
def transfer_inbox(self: Task, transfer_id: str) -> None:
    _follow(self, transfer_id, engine().inbox(transfer_id))


@shared_task(name=TASKROUTER_EVENT, **RETRY_POLICY)
def taskrouter_event(self: Task, transfer_id: str, fields: dict[str, str]) -> None:
    _follow(self, transfer_id, engine().taskrouter_event(transfer_id, fields))


@shared_task(name=CONVERSATION_EVENT, **RETRY_POLICY)
def conversation_event(self: Task, transfer_id: str, fields: dict[str, str]) -> None:
    _follow(self, transfer_id, engine().conversation_event(transfer_id, fields))


@shared_task(name=LEAVE_TRANSFER, **RETRY_POLICY)
def leave_transfer(self: Task, transfer_id: str, by_worker_sid: str | None) -> None:
    _follow(self, transfer_id, engine().leave(transfer_id, by_worker_sid))


@shared_task(name=CANCEL_TRANSFER, **RETRY_POLICY)
def cancel_transfer(self: Task, transfer_id: str, by_worker_sid: str | None) -> None:
    _follow(self, transfer_id, engine().cancel(transfer_id, by_worker_sid))


@shared_task(name=TRANSFER_DEADLINE, **RETRY_POLICY)
def transfer_deadline(self: Task, transfer_id: str) -> None:
    _follow(self, transfer_id, engine().deadline(transfer_id))


@shared_task(name=SWEEP_DEADLINES, **RETRY_POLICY)
def sweep_deadlines(self: Task) -> None:
    """Enqueue the deadline of every transfer whose transfer_timeout_s has passed."""
    for transfer_id in engine().store.due_deadlines(time.time(), DEADLINE_AGAIN_AFTER_S):
        send_job(self.app, TRANSFER_DEADLINE, transfer_id)


@shared_task(name=RECONCILE, **RETRY_POLICY)
def reconcile(self: Task) -> None:
    """Enqueue a catch-up for every transfer that has not moved for ``reconcile_after_s``."""
    config = self.app.baton_config
    for transfer_id in engine().store.stale_transfers(time.time() - config.reconcile_after_s):
        send_job(self.app, RECONCILE_TRANSFER, transfer_id)


@shared_task(name=RECONCILE_TRANSFER, **RETRY_POLICY)
def reconcile_transfer(self: Task, transfer_id: str) -> None:
    _follow(self, transfer_id, engine().reconcile(transfer_id))
