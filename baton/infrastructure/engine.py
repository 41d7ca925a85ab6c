"""Carries transfers forward: events into the state machine, its actions out through the gateway.

All work on one transfer happens under that transfer's lock. The record is saved with its outbox
(the actions decided but not yet done) before any action runs, and again after each one, so a
worker that dies anywhere leaves a record from which the next run simply carries on: every action
is idempotent where it runs (the invite is looked for before it is created again, closing a
closed participant or canceling a canceled task is success, re-routing merges keys).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis.lock import Lock

from baton.domain import transfers as t
from baton.domain.attributes import AttributesTooLarge, fit_attributes
from baton.domain.settings import Settings
from baton.domain.twilio_events import CONVERSATIONS, TASKROUTER, event_from_conversations, event_from_taskrouter
from baton.infrastructure import logs, metrics
from baton.infrastructure.config import Config
from baton.infrastructure.context import collect_context
from baton.infrastructure.names import agents_of, remember_worker
from baton.infrastructure.store import Record, Store
from baton.infrastructure.summary import summarizer_for
from baton.infrastructure.twilio_gateway import (
    Invite,
    PermanentTwilioError,
    RetryableTwilioError,
    TaskSnapshot,
    TwilioError,
    TwilioGateway,
)

log = logging.getLogger(__name__)

MAX_ACTION_ATTEMPTS = 8
# The longest backoff between two tries, of an action here and of a Celery task (workers.tasks); whole
# seconds, as Celery's jittered backoff wants.
MAX_RETRY_DELAY_S = 60
MAX_RETRY_AFTER_S = 300.0
# Re-routing reads the task, merges, and writes it back with If-Match; a task that changes under
# us (TaskRouter re-offering it) is read again this many times before the attempt counts as failed.
REROUTE_TRIES = 5
# Task states in which routing keys still matter.
ROUTABLE_TASK_STATES = ("pending", "reserved")
ALREADY_DONE_STATUSES = (400, 404, 409)
# How far back a repeated customer notice looks for the one a previous try may have posted.
NOTICE_LOOKBACK = 20
# What a TaskRouter event that arrives before the transfer knows its new task keeps until then, and
# how many such events a transfer keeps.
HELD_EVENT_FIELDS = ("EventType", "TaskSid", "ReservationSid", "WorkerSid", "TaskQueueSid", "TaskCanceledReason")
MAX_HELD_EVENTS = 20


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before trying an action again: Twilio's Retry-After, else capped exponential backoff with jitter."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return random.uniform(0.5, 1.0) * min(MAX_RETRY_DELAY_S, 2.0 ** (attempt - 1))


# A job reading a transfer's inbox also reads the events that come while it performs the actions of the earlier ones
# (TaskRouter's answers to those actions, mostly), up to this many rounds; then it leaves them to a successor.
INBOX_ROUNDS = 4


@dataclass(frozen=True)
class Outcome:
    """What the caller must do after processing: nothing, run the transfer again in ``retry_in`` seconds, and/or
    (``inbox_waiting``) enqueue a job for the events that wait in its inbox, which counts as scheduled."""

    retry_in: float | None = None
    inbox_waiting: bool = False


@dataclass(frozen=True)
class ActionTry:
    """One try of the action at the head of a transfer's outbox: what its performer works with.

    number: 1 for the first try; a later try of a once-only action first checks whether an earlier one went through.
    lock: the transfer's lock, held by this run; renewed before each long step. It is passed along, never kept
    on the engine, which one worker process shares between its threads.
    """

    transfer: t.Transfer
    number: int
    settings: Settings
    lock: Lock


class TransferEngine:
    """Applies events to transfers and performs the resulting actions."""

    def __init__(self, store: Store, gateway: TwilioGateway, config: Config,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.gateway = gateway
        self.config = config
        self.clock = clock
        self.summarizer = summarizer_for(config)

    # entry points (one per Celery task)

    def run(self, transfer_id: str) -> Outcome:
        """Carry out whatever the transfer's outbox still holds."""
        return self._process(transfer_id)

    def inbox(self, transfer_id: str) -> Outcome:
        """Apply the webhook events waiting in the transfer's inbox, in the order they arrived, and carry out what
        they call for; then the events that came meanwhile, the same way (``INBOX_ROUNDS``)."""
        with self.store.lock(transfer_id) as lock, logs.kept():
            for _ in range(INBOX_ROUNDS):
                deliveries = self.store.take_inbox(transfer_id)
                outcome = self._locked(transfer_id, lock, deliveries=deliveries)
                if not self.store.finish_inbox(transfer_id, len(deliveries)):
                    return outcome
                if outcome.retry_in is not None:
                    break
                lock.reacquire()
            return dataclasses.replace(outcome, inbox_waiting=True)

    def taskrouter_event(self, transfer_id: str, fields: Mapping[str, str]) -> Outcome:
        """One TaskRouter event about the transfer's new task, not through the inbox."""
        return self._process(transfer_id, deliveries=[{"source": TASKROUTER, "fields": fields}])

    def conversation_event(self, transfer_id: str, fields: Mapping[str, str]) -> Outcome:
        """One Conversations event about the transfer's conversation, not through the inbox."""
        return self._process(transfer_id, deliveries=[{"source": CONVERSATIONS, "fields": fields}])

    def cancel(self, transfer_id: str, by_worker_sid: str | None) -> Outcome:
        return self._process(transfer_id, event=t.CancelRequested(by_worker_sid))

    def leave(self, transfer_id: str, by_worker_sid: str | None) -> Outcome:
        return self._process(transfer_id, event=t.LeaveRequested(by_worker_sid))

    def deadline(self, transfer_id: str) -> Outcome:
        return self._process(transfer_id, event=t.DeadlinePassed())

    # the loop

    def reconcile(self, transfer_id: str) -> Outcome:
        """Catch up a transfer that stopped moving: apply what waits in its inbox, finish its outbox (its worker
        died), or ask Twilio what became of its new task and apply the events that were missed."""
        with self.store.lock(transfer_id) as lock, logs.kept():
            deliveries = self.store.take_inbox(transfer_id)
            outcome = self._reconciled(transfer_id, lock, deliveries)
            # Events that came meanwhile may have found the inbox marked scheduled by a job that was lost.
            return dataclasses.replace(outcome, inbox_waiting=bool(self.store.finish_inbox(transfer_id,
                                                                                           len(deliveries))))

    def _reconciled(self, transfer_id: str, lock: Lock, deliveries: Sequence[Mapping[str, Any]]) -> Outcome:
        record, settings = self.store.load_with_settings(transfer_id, self.config.settings)
        if record is None:
            return Outcome()
        received = self._receive_all(record, deliveries, settings)
        if not received.outbox and not received.transfer.is_final:
            try:
                missed = self._missed_events(received.transfer, settings)
            except TwilioError as exc:
                # The next round of the reconciliation asks again.
                log.warning("transfer %s: could not reconcile (%s)", transfer_id, exc)
                missed = []
            for event in missed:
                received = self._apply(received, event, settings)
        self._save_received(record, received)
        return self._drain(received, settings, lock)

    def _process(self, transfer_id: str, *, event: t.Event | None = None,
                 deliveries: Sequence[Mapping[str, Any]] = ()) -> Outcome:
        with self.store.lock(transfer_id) as lock, logs.kept():
            return self._locked(transfer_id, lock, event=event, deliveries=deliveries)

    def _locked(self, transfer_id: str, lock: Lock, *, event: t.Event | None = None,
                deliveries: Sequence[Mapping[str, Any]] = ()) -> Outcome:
        """Apply these events, save, and carry out the outbox; holding the transfer's lock."""
        record, settings = self.store.load_with_settings(transfer_id, self.config.settings)
        if record is None:
            log.warning("transfer %s not found (expired?)", transfer_id)
            return Outcome()
        received = self._receive_all(record, deliveries, settings)
        if event is not None:
            received = self._apply(received, event, settings)
        self._save_received(record, received)
        return self._drain(received, settings, lock)

    def _save_received(self, before: Record, received: Record) -> None:
        """Save what the events changed, before any action runs."""
        if received != before:
            self.store.save(received, transfer_changed=received.transfer != before.transfer)
            self._moved(before.transfer, received.transfer)

    def _receive_all(self, record: Record, deliveries: Sequence[Mapping[str, Any]], settings: Settings) -> Record:
        for delivery in deliveries:
            fields = delivery["fields"]
            # Until the next event: its effects, and the actions after the last one, are logged under its ids.
            logs.bind(request_id=delivery.get("request_id"), event_sid=fields.get("Sid"),
                      task_sid=fields.get("TaskSid"))
            if delivery["source"] == TASKROUTER:
                record = self._receive_taskrouter(record, fields, settings)
            else:
                event = event_from_conversations(fields)
                if event is not None and self._confirmed(record.transfer, event):
                    record = self._apply(record, event, settings)
        return record

    def _receive_taskrouter(self, record: Record, fields: Mapping[str, str], settings: Settings) -> Record:
        event = event_from_taskrouter(fields)
        task_sid = fields.get("TaskSid")
        if event is None:
            return record
        if task_sid and record.transfer.new_task_sid is None:
            # Only the invite tells which task is the transfer's: until then, an event naming the
            # transfer may be about any task (a stale or forged one), so it waits.
            return self._hold(record, fields)
        if task_sid in (None, record.transfer.new_task_sid):
            return self._apply(record, event, settings)
        return record

    def _confirmed(self, transfer: t.Transfer, event: t.Event) -> bool:
        """Whether Twilio bears out an event that ends the transfer on one participant's leaving:
        that participant is no longer in the conversation (a replayed or stale removal is not acted on)."""
        is_about_the_transfer = isinstance(event, t.ParticipantLeft) and (
            event.participant_sid == transfer.sender_conversation_participant_sid
            or event.participant_sid in transfer.customer_participant_sids)
        if not is_about_the_transfer or transfer.is_final or transfer.conversation_sid is None:
            return True
        try:
            participants = self.gateway.list_conversation_participants(transfer.conversation_sid)
        except TwilioError as exc:
            # A signed, deduplicated event that cannot be checked now is taken at its word.
            log.warning("transfer %s: could not check that participant %s left (%s)", transfer.id,
                        event.participant_sid, exc)
            return True
        if any(participant.sid == event.participant_sid for participant in participants):
            log.warning("transfer %s: participant %s is still in the conversation; their removal is stale",
                        transfer.id, event.participant_sid)
            return False
        return True

    def _hold(self, record: Record, fields: Mapping[str, str]) -> Record:
        held = {name: fields[name] for name in HELD_EVENT_FIELDS if fields.get(name)}
        if held in record.held_events or len(record.held_events) >= MAX_HELD_EVENTS:
            return record
        return dataclasses.replace(record, held_events=record.held_events + (held,))

    def _release_held(self, record: Record, settings: Settings) -> Record:
        """Once the new task is known: apply the held events that are about it, drop the others."""
        if not record.held_events or record.transfer.new_task_sid is None:
            return record
        released = dataclasses.replace(record, held_events=())
        for fields in record.held_events:
            if fields.get("TaskSid") == record.transfer.new_task_sid:
                released = self._apply(released, event_from_taskrouter(fields), settings)
            else:
                log.warning("transfer %s: dropped an event about task %s, not its new task", record.transfer.id,
                            fields.get("TaskSid"))
        self.store.save(released)
        self._moved(record.transfer, released.transfer)
        return released

    def _missed_events(self, transfer: t.Transfer, settings: Settings) -> list[t.Event]:
        """The events a transfer would have had from what Twilio says of its new task now."""
        if transfer.status in t.PENDING_STATES and self.clock() - transfer.created_at > settings.transfer_timeout_s:
            return [t.DeadlinePassed()]
        if transfer.status not in (t.ROUTING, t.OFFERED) or not transfer.new_task_sid:
            return []
        try:
            task = self.gateway.fetch_task(transfer.new_task_sid)
        except PermanentTwilioError as exc:
            if exc.status == 404:
                return [t.NewTaskEnded("task.deleted", "the task no longer exists")]
            raise
        events: list[t.Event] = []
        live: list[t.Event] = []
        for reservation in self.gateway.list_reservations(transfer.new_task_sid):
            created = t.ReservationCreated(reservation.sid, reservation.worker_sid)
            if reservation.status in ("rejected", "timeout", "rescinded", "canceled"):
                events += [created, t.ReservationEnded(reservation.sid, reservation.worker_sid, reservation.status)]
            elif reservation.status in ("accepted", "wrapping", "completed"):
                live.append(t.ReservationAccepted(reservation.sid, reservation.worker_sid))
            elif reservation.status == "pending":
                live.append(created)
        if task.assignment_status == "canceled":
            live.append(t.NewTaskEnded("task.canceled"))
        # Offers that are over first, then what is still going on, as TaskRouter lived them.
        return events + live

    def _apply(self, record: Record, event: t.Event, settings: Settings) -> Record:
        """The record after ``event``, not yet saved (whoever saves it then logs and counts the move)."""
        step = t.advance(record.transfer, event, settings, self.clock())
        if step.transfer == record.transfer and not step.actions:
            return record
        # An action already tried stays as it is: its attempts are counted against it.
        tried = record.outbox[:1] if record.head_attempts else ()
        outbox = tried + t.coalesce(record.outbox[len(tried):] + step.actions, step.transfer)
        return dataclasses.replace(record, transfer=step.transfer, outbox=outbox)

    def _moved(self, before: t.Transfer, after: t.Transfer) -> None:
        """Log a change of state and count what it means: an acceptance, a transfer finished. Called once the
        change is saved: a run that fails before counts nothing, and the run that applies it again counts it."""
        if after.status != before.status:
            log.info("transfer %s %s -> %s", after.id, before.status, after.status)
        if before.accepted_worker_sid is None and after.accepted_worker_sid is not None:
            metrics.transfer_accepted(after.mode, self.clock() - after.created_at)
        if after.is_final and not before.is_final:
            metrics.transfer_finished(after.status, after.mode, after.attempt)

    def _drain(self, record: Record, settings: Settings, lock: Lock) -> Outcome:
        while record.outbox:
            lock.reacquire()
            action = record.outbox[0]
            attempts = record.head_attempts + 1
            if action.once_only:
                # Recorded before the call: a later run that finds it set knows the call may have gone
                # through (the worker died waiting for the answer) and checks before calling again.
                record = dataclasses.replace(record, head_attempts=attempts)
                self.store.save(record, transfer_changed=False)
            try:
                follow_up = self._perform(action, ActionTry(record.transfer, attempts, settings, lock))
            except RetryableTwilioError as exc:
                if attempts < MAX_ACTION_ATTEMPTS:
                    self.store.save(dataclasses.replace(record, head_attempts=attempts), transfer_changed=False)
                    log.warning("transfer %s: %s will be retried (%s)", record.transfer.id,
                                type(action).__name__, exc)
                    return Outcome(retry_in=retry_delay(attempts, exc.retry_after))
                follow_up = self._failed(action, record.transfer, f"Twilio kept failing: {exc}", exc.code)
            except PermanentTwilioError as exc:
                follow_up = self._failed(action, record.transfer, str(exc), exc.code)
            record = dataclasses.replace(record, outbox=record.outbox[1:], head_attempts=0)
            before = record.transfer
            if follow_up is not None:
                step = t.advance(record.transfer, follow_up, settings, self.clock())
                record = dataclasses.replace(record, transfer=step.transfer, outbox=record.outbox + step.actions)
            self.store.save(record, transfer_changed=record.transfer != before)
            self._moved(before, record.transfer)
            record = self._release_held(record, settings)
        return Outcome()

    @staticmethod
    def _failed(action: t.Action, transfer: t.Transfer, reason: str, code: int | None) -> t.Event | None:
        """What an action's permanent failure means: the transfer fails, unless the action is a courtesy."""
        if action.fails_transfer:
            return t.ActionFailed(action.name, reason, code)
        log.warning("transfer %s: %s not done, the transfer goes on (%s)", transfer.id, action.name, reason)
        return None

    # actions

    def _perform(self, action: t.Action, attempt: ActionTry) -> t.Event | None:
        """Carry out ``action`` through its type's performer (``PERFORMERS``); the event it leads to, if any."""
        return self.PERFORMERS[type(action)](self, action, attempt)

    def _reject_reservation(self, action: t.RejectReservation, attempt: ActionTry) -> None:
        new_task_sid = attempt.transfer.new_task_sid
        return self._tolerating_gone(lambda: self.gateway.update_reservation(
            new_task_sid, action.reservation_sid, "rejected"))

    def _close_sender(self, action: t.CloseSender, attempt: ActionTry) -> t.Event:
        transfer = attempt.transfer
        if attempt.number == 1 or self._sender_task_open(transfer):
            self._tolerating_gone(lambda: self.gateway.close_channel_participant(
                transfer.interaction_sid, transfer.channel_sid, transfer.sender_participant_sid, action.status))
        return t.SenderClosed()

    def _cancel_new_task(self, action: t.CancelNewTask, attempt: ActionTry) -> None:
        new_task_sid = attempt.transfer.new_task_sid
        return self._tolerating_gone(lambda: self.gateway.cancel_task(new_task_sid, action.reason))

    def _notify_customer(self, action: t.NotifyCustomer, attempt: ActionTry) -> None:
        transfer = attempt.transfer
        if attempt.number == 1 or not self._notice_posted(transfer):
            self.gateway.post_message(transfer.conversation_sid, action.text, {"baton": {"transfer_id": transfer.id}})
        return None

    def _notice_posted(self, transfer: t.Transfer) -> bool:
        """Whether this transfer's notice is among the newest messages (a try before went through)."""
        for _, message in zip(range(NOTICE_LOOKBACK), self.gateway.recent_messages(transfer.conversation_sid,
                                                                                    NOTICE_LOOKBACK), strict=False):
            if (message.attributes.get("baton") or {}).get("transfer_id") == transfer.id:
                return True
        return False

    def _sender_task_open(self, transfer: t.Transfer) -> bool:
        """Whether the sender still holds their task: a close tried before may have gone through."""
        try:
            return self.gateway.fetch_task(transfer.from_task_sid).assignment_status == "assigned"
        except PermanentTwilioError:
            return False

    def _prepare(self, action: t.Prepare, attempt: ActionTry) -> t.Event:
        transfer, settings = attempt.transfer, attempt.settings
        task = TaskSnapshot(**action.task) if action.task else self.gateway.fetch_task(transfer.from_task_sid)
        interaction_sid = task.attributes.get("flexInteractionSid")
        channel_sid = task.attributes.get("flexInteractionChannelSid")
        if not interaction_sid or not channel_sid:
            return t.ActionFailed("prepare", "the task is not a Flex Conversations task (no flexInteractionSid)")
        conversation_sid = task.attributes.get("conversationSid")
        agents = [p for p in self.gateway.list_channel_participants(interaction_sid, channel_sid)
                  if p.type == "agent"]
        sender = next((p for p in agents if p.task_sid == transfer.from_task_sid), None)
        if sender is None:
            return t.ActionFailed("prepare", "the sender is not a participant of the conversation")
        target_available = True
        if transfer.target_type == t.ROUTE_WORKER:
            target = self.gateway.fetch_worker(transfer.target_sid)
            remember_worker(self.store, target)
            target_available = target.available
        agent_workers = agents_of((p.worker_sid for p in agents if p.worker_sid), self.store, self.gateway)
        agent_identities = {sid: identity for sid, (_, identity) in agent_workers.items()}
        sender_name = agent_workers[transfer.from_worker_sid][0] if transfer.from_worker_sid in agent_workers else None
        participants = self.gateway.list_conversation_participants(conversation_sid) if conversation_sid else []
        sender_identity = agent_identities.get(transfer.from_worker_sid)
        sender_in_conversation = next((p.sid for p in participants if p.identity == sender_identity), None)
        customers = tuple(p.sid for p in participants if p.identity not in agent_identities.values())
        previous = task.attributes.get("transfer") if isinstance(task.attributes.get("transfer"), dict) else {}
        earlier = previous.get("earlier_transfers", 0) + 1 if previous.get("id") else 0
        attempt.lock.reacquire()
        context = collect_context(
            self.gateway, conversation_sid, channel=task.task_channel_unique_name or "", participants=participants,
            agent_identities=set(agent_identities.values()), redact_pii=settings.redact_pii,
            earlier_transfers=earlier) if conversation_sid else None
        # Last, so that a Twilio error above never makes the LLM summarize twice.
        attempt.lock.reacquire()
        summary = self.summarizer.summarize(context, notes=transfer.notes) if (
            context is not None and transfer.summary_requested) else None
        return t.Prepared(
            original_attributes=task.attributes,
            original_queue_sid=task.task_queue_sid,
            task_channel=task.task_channel_unique_name,
            interaction_sid=interaction_sid,
            channel_sid=channel_sid,
            conversation_sid=conversation_sid,
            sender_participant_sid=sender.sid,
            agents_in_conversation=tuple(agent_identities),
            target_available=target_available,
            fallback_queue_sid=self.config.fallback_queue_sid,
            sender_conversation_participant_sid=sender_in_conversation,
            customer_participant_sids=customers,
            previous_transfer_id=previous.get("id"),
            earlier_transfers=earlier,
            sender_name=sender_name,
            context=context.to_dict() if context is not None else None,
            summary=summary.text if summary else None,
            summary_fallback=summary.fallback_reason if summary else None,
        )

    def _create_invite(self, action: t.CreateInvite, attempt: ActionTry) -> t.Event:
        transfer = attempt.transfer
        invite = self._earlier_invite(transfer) if attempt.number > 1 else None
        if invite is None:
            invite = self.gateway.create_invite(transfer.interaction_sid, transfer.channel_sid, {
                "workspace_sid": self.config.twilio_workspace_sid,
                "workflow_sid": action.workflow_sid or self.config.transfer_workflow_sid,
                "task_channel_unique_name": transfer.task_channel,
                "attributes": action.attributes,
            })
        if invite.task_sid:
            self.store.index_new_task(transfer, invite.task_sid)
        return t.InviteCreated(invite.sid, invite.task_sid)

    def _earlier_invite(self, transfer: t.Transfer) -> Invite | None:
        """The invite an earlier try made for this transfer, if it went through."""
        for invite in self.gateway.list_invites(transfer.interaction_sid, transfer.channel_sid):
            if (invite.task_attributes.get("transfer") or {}).get("id") == transfer.id:
                return invite
        return None

    def _reroute(self, action: t.Reroute, attempt: ActionTry) -> t.Event | None:
        transfer = attempt.transfer
        for _ in range(REROUTE_TRIES):
            task = self.gateway.fetch_task(transfer.new_task_sid)
            if task.assignment_status not in ROUTABLE_TASK_STATES:
                return None
            transfer_attribute = {**(task.attributes.get("transfer") or {}), "attempt": action.attempt,
                                  "route_version": action.version}
            base = {key: value for key, value in task.attributes.items() if key != "transfer"}
            # The exclusions grow with each declined offer: fit again, shedding context if need be.
            try:
                attributes = fit_attributes({**base, **action.routing}, transfer_attribute)
            except AttributesTooLarge as exc:
                # No write can route the task on without an agent who declined: end the transfer, and the
                # sender, who was never closed, keeps the customer.
                return t.ActionFailed(action.name, str(exc))
            if attributes == task.attributes:
                return None
            try:
                self.gateway.update_task_attributes(transfer.new_task_sid, attributes, task.etag)
                return None
            except PermanentTwilioError as exc:
                if exc.status != 412:
                    raise
        raise RetryableTwilioError("tasks.update", "the task kept changing while being re-routed", 412)

    @staticmethod
    def _tolerating_gone(call: Callable[[], object]) -> None:
        """Run an action whose goal may already be reached: Twilio refusing it because the reservation,
        participant or task has already moved on or is gone (400, 404, 409) counts as success."""
        try:
            call()
        except PermanentTwilioError as exc:
            if exc.status not in ALREADY_DONE_STATUSES:
                raise
            log.info("%s: already done or gone (%s %s)", exc.endpoint, exc.status, exc.code)
        return None

    # The one place an action type meets its performer (a test checks that every type of transfers.Action has one).
    # A performer takes the action and its try, and returns what the state machine learns from it, if anything.
    PERFORMERS: ClassVar[Mapping[type, Callable[[TransferEngine, Any, ActionTry], t.Event | None]]] = {
        t.Prepare: _prepare,
        t.CreateInvite: _create_invite,
        t.Reroute: _reroute,
        t.RejectReservation: _reject_reservation,
        t.CloseSender: _close_sender,
        t.CancelNewTask: _cancel_new_task,
        t.NotifyCustomer: _notify_customer,
    }

