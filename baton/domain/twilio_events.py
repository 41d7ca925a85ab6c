"""Twilio's events, listed once: which ones move a transfer, into which event of the state machine, and
which ones Baton hears of and ignores on purpose.

Two webhooks bring them (Twilio's TaskRouter event reference, its Conversations webhooks page):
TaskRouter's event callback (or the same events through
Event Streams, ``baton.infrastructure.eventstreams``), and the Conversations post-event webhook; both are forms of
strings. Each table maps an event type to a pure handler that turns the event's fields into the state
machine's event, or None when this occurrence of the type moves nothing (a conversation that becomes
inactive, not closed). Everything else reads these tables: the web edge (what to enqueue), the engine
(what to apply), ``baton setup`` (the workspace's ``EventsFilter``, the Conversations webhook's
``Filters``), ``baton doctor`` (that those filters let the events through), Event Streams (the types
subscribed to) and the bench.

The ignored lists name every other type Twilio documents, so that a type in neither list is one Twilio
added since: the edge acknowledges it like any ignored event, and says so in its log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from baton.domain import transfers as t

Handler = Callable[[Mapping[str, str]], t.Event | None]

# Where an event came from, as a transfer's inbox records it beside its fields.
TASKROUTER, CONVERSATIONS = "taskrouter", "conversations"


# TaskRouter (the workspace's event callback, and Event Streams' com.twilio.taskrouter.* types)


def _reservation_created(fields: Mapping[str, str]) -> t.Event:
    return t.ReservationCreated(fields.get("ReservationSid", ""), fields.get("WorkerSid", ""))


def _reservation_accepted(fields: Mapping[str, str]) -> t.Event:
    return t.ReservationAccepted(fields.get("ReservationSid", ""), fields.get("WorkerSid", ""))


def _reservation_ended(outcome: str) -> Handler:
    """The offer ended without an answer: ``rejected``, ``timeout``, ``rescinded`` or ``canceled``."""
    def handler(fields: Mapping[str, str]) -> t.Event:
        return t.ReservationEnded(fields.get("ReservationSid", ""), fields.get("WorkerSid", ""), outcome)
    return handler


def _task_queue_entered(fields: Mapping[str, str]) -> t.Event:
    return t.TaskQueueEntered(fields.get("TaskQueueSid", ""))


def _workflow_timeout(fields: Mapping[str, str]) -> t.Event:
    return t.WorkflowTimedOut()


def _new_task_ended(event_type: str) -> Handler:
    """The new task is gone: canceled (``TaskCanceledReason`` says why), deleted, or deleted by its TTL."""
    def handler(fields: Mapping[str, str]) -> t.Event:
        return t.NewTaskEnded(event_type, fields.get("TaskCanceledReason"))
    return handler


# The TaskRouter events of a transfer's new task that move the transfer. ``baton setup`` subscribes the
# workspace (or the Event Streams sink) to exactly these; the edge acknowledges and drops every other one.
TASKROUTER_HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "reservation.created": _reservation_created,
    "reservation.accepted": _reservation_accepted,
    "reservation.rejected": _reservation_ended("rejected"),
    "reservation.timeout": _reservation_ended("timeout"),
    "reservation.rescinded": _reservation_ended("rescinded"),
    "reservation.canceled": _reservation_ended("canceled"),
    "task-queue.entered": _task_queue_entered,
    "workflow.timeout": _workflow_timeout,
    "task.canceled": _new_task_ended("task.canceled"),
    "task.deleted": _new_task_ended("task.deleted"),
    "task.system-deleted": _new_task_ended("task.system-deleted"),
})
TRANSFER_EVENTS = frozenset(TASKROUTER_HANDLERS)

# Every other TaskRouter event type of Twilio's TaskRouter event reference, and why none matters:
IGNORED_TASKROUTER_EVENTS = frozenset({
    # The offer's own end once accepted, or a reservation that never reached a worker: acceptance already
    # completed the transfer, and a failed reservation is followed by the task's next routing step.
    "reservation.completed", "reservation.wrapup", "reservation.failed",
    # The new task's life after acceptance, and its creation (Baton learns the sid from the invite).
    "task.created", "task.updated", "task.wrapup", "task.completed",
    # Flex's own transfers (the native feature Baton replaces), not Baton's.
    "task.transfer-initiated", "task.transfer-attempt-failed", "task.transfer-failed",
    "task.transfer-canceled", "task.transfer-completed",
    # Routing steps that change no offer: the workflow's targets and queues as the task moves through them.
    "workflow.entered", "workflow.target-matched", "workflow.skipped",
    "task-queue.timeout", "task-queue.moved",
    # Configuration and agents: Baton reads what it needs when it routes.
    "task-queue.created", "task-queue.deleted", "task-queue.expression.updated",
    "task-channel.created", "task-channel.updated", "task-channel.deleted",
    "worker.created", "worker.activity.update", "worker.attributes.update", "worker.capacity.update",
    "worker.channel.availability.update", "worker.deleted",
    "workflow.created", "workflow.updated", "workflow.deleted",
    "activity.created", "activity.updated", "activity.deleted",
    "workspace.created", "workspace.updated", "workspace.deleted",
})


def event_from_taskrouter(fields: Mapping[str, str]) -> t.Event | None:
    """The state machine's event for a TaskRouter event of a transfer's new task (the callback's fields), or None."""
    handler = TASKROUTER_HANDLERS.get(fields.get("EventType", ""))
    return handler(fields) if handler is not None else None


# Conversations (post-event webhooks: the account's global one, or the Flex conversation service's own)


def _conversation_state_updated(fields: Mapping[str, str]) -> t.Event | None:
    # A conversation also goes active -> inactive and back (its timers): only closing ends a transfer.
    return t.ConversationClosed() if fields.get("StateTo") == "closed" else None


def _participant_removed(fields: Mapping[str, str]) -> t.Event | None:
    participant_sid = fields.get("ParticipantSid")
    return t.ParticipantLeft(participant_sid) if participant_sid else None


# The Conversations events that can end a transfer in progress: the conversation closing, someone leaving
# (the sender, before acceptance; the customer, at any time). ``baton setup`` puts exactly these in the
# webhook's Filters. Every one is about the conversation in ``ConversationSid``.
CONVERSATIONS_HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "onConversationStateUpdated": _conversation_state_updated,
    "onParticipantRemoved": _participant_removed,
})
CONVERSATION_EVENTS = tuple(sorted(CONVERSATIONS_HANDLERS))

# Every other post-action event of Twilio's Conversations webhooks. Messages are read from the REST API
# when a transfer starts (subscribing to onMessageAdded would post every message of the account to Baton).
IGNORED_CONVERSATIONS_EVENTS = frozenset({
    "onMessageAdded", "onMessageUpdated", "onMessageRemoved", "onDeliveryUpdated",
    "onConversationAdded", "onConversationUpdated", "onConversationRemoved",
    "onParticipantAdded", "onParticipantUpdated",
    "onUserAdded", "onUserUpdated",
})

# The pre-action events (answered before Twilio applies the change). Baton asks for none, but the account's
# Filters drive its pre-event URL too: ``baton setup`` keeps those it finds, for another application.
CONVERSATIONS_PRE_ACTION_EVENTS = frozenset({
    "onMessageAdd", "onMessageUpdate", "onMessageRemove", "onConversationAdd", "onConversationUpdate",
    "onConversationRemove", "onParticipantAdd", "onParticipantUpdate", "onParticipantRemove", "onUserUpdate",
})

# What the worker needs of a Conversations event, and what tells one event from another (they carry no
# event sid): a participant is removed once, a conversation changes state once at a given time.
CONVERSATION_FIELDS = ("EventType", "ConversationSid", "ParticipantSid", "StateTo", "StateUpdated", "DateUpdated")


def event_from_conversations(fields: Mapping[str, str]) -> t.Event | None:
    """The state machine's event for a Conversations post-event webhook about a transfer's conversation, or None."""
    handler = CONVERSATIONS_HANDLERS.get(fields.get("EventType", ""))
    return handler(fields) if handler is not None else None

