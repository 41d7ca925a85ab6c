"""The transfer lifecycle of docs/contracts.md §1 as a pure state machine.

``advance(transfer, event, settings, now)`` returns the next transfer and the actions the worker
must carry out; it does no I/O. The worker performs each action through the gateway and feeds
what happened back in as another event. Events arrive out of order and more than once: an event
that does not move the transfer forward changes nothing and asks for nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from baton.domain.attributes import AttributesTooLarge, fit_attributes
from baton.domain.settings import Settings

REQUESTED, ROUTING, OFFERED, ACCEPTED = "requested", "routing", "offered", "accepted"
COMPLETED, FAILED, CANCELED = "completed", "failed", "canceled"
STATES = (REQUESTED, ROUTING, OFFERED, ACCEPTED, COMPLETED, FAILED, CANCELED)
PENDING_STATES = (REQUESTED, ROUTING, OFFERED)
FINAL_STATES = (COMPLETED, FAILED, CANCELED)

ROUTE_WORKER, ROUTE_QUEUE, ROUTE_WORKFLOW = "worker", "queue", "workflow"
TARGET_TYPES = {"WK": ROUTE_WORKER, "WQ": ROUTE_QUEUE, "WW": ROUTE_WORKFLOW}
# Keys the new task must not inherit from the original: they describe the original's own invite.
INVITE_KEYS = ("flexChannelInviteSid",)


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a transfer's audit trail."""

    at: float
    state: str
    event: str
    worker_sid: str | None = None
    reservation_sid: str | None = None
    reason: str | None = None
    code: int | None = None


@dataclass(frozen=True)
class Transfer:
    """A transfer and everything Baton knows of it.

    target_type/target_sid: what the sender asked for. route/queue_sid: the route in force now
    (the target agent, the target or fallback queue, or the target workflow).
    excluded_workers: never offered this task: the sender, agents already in the conversation, and
    every agent who rejected it or let it time out.
    attempt: offers made so far to agents who were not excluded.
    live_offers: the offers (reservation sid, worker sid) not yet answered: a queue that reserves
        several workers at once (MaxReservedWorkers) makes several; the first acceptance wins.
    seen_reservations/finished_reservations: offers counted, and offers over, whatever order their
        events arrived in. refused_reservations: offers to excluded agents that Baton refused.
    accepted_reservation_sid: the offer that was accepted.
    route_version: how many times the route has been written to the new task; each write bumps it,
        so that every write is a change TaskRouter acts on.
    close_requested/sender_closed: closing the sender's participant has been asked for / is done
        (on acceptance, on queue entry, on leaving a warm transfer), or the sender left by themselves.
    sender_conversation_participant_sid/customer_participant_sids: who is who among the
        conversation's participants (``MB…``), to tell the sender leaving from the customer leaving.
        A participant sid is never reused: an event about an earlier participant of the same person
        (someone who left and came back) is about nobody in this transfer.
    previous_transfer_id/earlier_transfers: the transfer that brought the task to its sender, and
        how many transfers this conversation went through before this one.
    from_worker_name: the sender's friendly name in TaskRouter, for the receiving agent to read.
    context/summary: the conversation's context and the summary, whole (redacted when the setting
        says so); the new task carries them fitted to TaskRouter's limit.
    """

    id: str
    from_task_sid: str
    from_worker_sid: str
    target_type: str
    target_sid: str
    mode: str = "cold"
    notes: str | None = None
    summary_requested: bool = False
    status: str = REQUESTED
    created_at: float = 0.0
    updated_at: float = 0.0
    route: str | None = None
    queue_sid: str | None = None
    excluded_workers: tuple[str, ...] = ()
    attempt: int = 0
    interaction_sid: str | None = None
    channel_sid: str | None = None
    conversation_sid: str | None = None
    task_channel: str | None = None
    sender_participant_sid: str | None = None
    sender_conversation_participant_sid: str | None = None
    customer_participant_sids: tuple[str, ...] = ()
    previous_transfer_id: str | None = None
    earlier_transfers: int = 0
    from_worker_name: str | None = None
    context: dict[str, Any] | None = None
    summary: str | None = None
    new_task_sid: str | None = None
    invite_sid: str | None = None
    live_offers: tuple[tuple[str, str], ...] = ()
    seen_reservations: tuple[str, ...] = ()
    finished_reservations: tuple[str, ...] = ()
    refused_reservations: tuple[str, ...] = ()
    accepted_reservation_sid: str | None = None
    route_version: int = 0
    accepted_worker_sid: str | None = None
    close_requested: bool = False
    sender_closed: bool = False
    failure_reason: str | None = None
    failure_code: int | None = None
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def offered_worker_sids(self) -> tuple[str, ...]:
        return tuple(worker_sid for _, worker_sid in self.live_offers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transfer":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in ("excluded_workers", "seen_reservations", "finished_reservations", "refused_reservations",
                     "customer_participant_sids"):
            values[name] = tuple(values.get(name, ()))
        values["live_offers"] = tuple(tuple(offer) for offer in values.get("live_offers", ()))
        values["timeline"] = tuple(TimelineEntry(**entry) for entry in values.get("timeline", ()))
        return cls(**values)


# Events: what happened, as the worker learned it from a webhook, an API call or its own action.

@dataclass(frozen=True)
class Prepared:
    """The worker read the original task and the interaction channel.

    target_available: for an agent target, whether that agent can take the task now.
    agents_in_conversation: worker sids of the agents already in the conversation.
    sender_name: the sender's friendly name in TaskRouter.
    """

    original_attributes: dict[str, Any]
    original_queue_sid: str | None
    task_channel: str | None
    interaction_sid: str
    channel_sid: str
    conversation_sid: str | None
    sender_participant_sid: str | None
    agents_in_conversation: tuple[str, ...] = ()
    target_available: bool = True
    fallback_queue_sid: str | None = None
    sender_conversation_participant_sid: str | None = None
    customer_participant_sids: tuple[str, ...] = ()
    previous_transfer_id: str | None = None
    earlier_transfers: int = 0
    sender_name: str | None = None
    context: dict[str, Any] | None = None
    summary: str | None = None
    summary_fallback: str | None = None


@dataclass(frozen=True)
class InviteCreated:
    invite_sid: str
    task_sid: str


@dataclass(frozen=True)
class ReservationCreated:
    reservation_sid: str
    worker_sid: str


@dataclass(frozen=True)
class ReservationAccepted:
    reservation_sid: str
    worker_sid: str


@dataclass(frozen=True)
class ReservationEnded:
    """The offer ended unanswered: ``rejected``, not answered in time (``timeout``), or withdrawn by
    TaskRouter: ``rescinded`` (another agent accepted) or ``canceled``. Only the first two are refusals."""

    reservation_sid: str
    worker_sid: str
    outcome: str


@dataclass(frozen=True)
class TaskQueueEntered:
    queue_sid: str


@dataclass(frozen=True)
class WorkflowTimedOut:
    """The new task ran out of its workflow's steps (``workflow.timeout``)."""


@dataclass(frozen=True)
class NewTaskEnded:
    """The new task is gone before anyone accepted it: canceled, deleted, or out of its workflow."""

    event_type: str
    reason: str | None = None


@dataclass(frozen=True)
class SenderClosed:
    pass


@dataclass(frozen=True)
class CancelRequested:
    by: str | None = None


@dataclass(frozen=True)
class LeaveRequested:
    """The sender of a warm transfer leaves the conversation to the agent who accepted it."""

    by: str | None = None


@dataclass(frozen=True)
class ConversationClosed:
    """The conversation itself ended (``onConversationStateUpdated`` to ``closed``)."""


@dataclass(frozen=True)
class ParticipantLeft:
    """A participant (``MB…``) is no longer in the conversation (``onParticipantRemoved``)."""

    participant_sid: str


@dataclass(frozen=True)
class DeadlinePassed:
    pass


@dataclass(frozen=True)
class ActionFailed:
    """A Twilio call failed permanently (or kept failing): the transfer cannot go on."""

    action: str
    reason: str
    code: int | None = None


Event = (Prepared | InviteCreated | ReservationCreated | ReservationAccepted | ReservationEnded | TaskQueueEntered
         | WorkflowTimedOut | NewTaskEnded | SenderClosed | CancelRequested | LeaveRequested | ConversationClosed
         | ParticipantLeft | DeadlinePassed | ActionFailed)


# Actions: what the worker must do next. Each is idempotent where it runs, and says of itself its
# ``name`` (in the timeline), whether it is ``once_only`` (a repetition would show: a second invite,
# a second close, a second notice; a retry first checks whether the first try went through), and
# whether its permanent failure ``fails_transfer``.

class _ActionTraits:
    once_only: ClassVar[bool] = False
    fails_transfer: ClassVar[bool] = True


@dataclass(frozen=True)
class Prepare(_ActionTraits):
    """Read the original task, its interaction channel's participants and the target's availability.

    task: the original task as read when the transfer was asked for (its sid, attributes, assignment status,
    queue, workflow, channel and ETag): it is not read again. None in a record from before it was kept.
    """

    name: ClassVar[str] = "prepare"
    task: dict[str, Any] | None = None


@dataclass(frozen=True)
class CreateInvite(_ActionTraits):
    """Create the new task with an Interactions invite (unless one carrying this transfer exists).

    workflow_sid: None means the configured transfer workflow.
    """

    name: ClassVar[str] = "invite"
    once_only: ClassVar[bool] = True
    attributes: dict[str, Any]
    workflow_sid: str | None = None


@dataclass(frozen=True)
class Reroute(_ActionTraits):
    """Merge these routing keys, the attempt count and the route's version into the new task's
    attributes (If-Match on its ETag)."""

    name: ClassVar[str] = "re-route"
    routing: dict[str, Any]
    attempt: int
    version: int


@dataclass(frozen=True)
class RejectReservation(_ActionTraits):
    """Refuse an offer to an agent the transfer excludes."""

    name: ClassVar[str] = "reject offer"
    reservation_sid: str


@dataclass(frozen=True)
class CloseSender(_ActionTraits):
    """Close (or wrap up) the sender's interaction participant, completing the original task."""

    name: ClassVar[str] = "close sender"
    once_only: ClassVar[bool] = True
    status: str = "closed"


@dataclass(frozen=True)
class CancelNewTask(_ActionTraits):
    """Cancel the new task: the transfer ended before anyone accepted it."""

    name: ClassVar[str] = "cancel new task"
    reason: str


@dataclass(frozen=True)
class NotifyCustomer(_ActionTraits):
    """Tell the customer, in the conversation, that a transfer has started (no internal content).

    A courtesy: when it cannot be posted (the conversation closed meanwhile), the transfer goes on."""

    name: ClassVar[str] = "customer notice"
    once_only: ClassVar[bool] = True
    fails_transfer: ClassVar[bool] = False
    text: str


Action = Prepare | CreateInvite | Reroute | RejectReservation | CloseSender | CancelNewTask | NotifyCustomer
ACTION_TYPES: dict[str, type] = {cls.__name__: cls for cls in (Prepare, CreateInvite, Reroute, RejectReservation,
                                                               CloseSender, CancelNewTask, NotifyCustomer)}


@dataclass(frozen=True)
class Step:
    """What ``advance`` decided: the next transfer and the actions to carry out, in order."""

    transfer: Transfer
    actions: tuple[Action, ...] = field(default_factory=tuple)


def new_transfer_id() -> str:
    """A transfer id: ``tr_`` and 32 hex digits."""
    return "tr_" + uuid.uuid4().hex


def target_type_of(sid: str) -> str:
    """``worker``, ``queue`` or ``workflow`` for a WK, WQ or WW sid."""
    return TARGET_TYPES[sid[:2]]


def routing_keys(transfer: Transfer) -> dict[str, Any]:
    """The routing keys of docs/contracts.md §2.1 for the route in force."""
    return {
        "transferTargetType": transfer.route,
        "transferTargetSid": transfer.target_sid,
        "transferQueueSid": transfer.queue_sid,
        "transferExcludedWorkers": list(transfer.excluded_workers),
    }


def transfer_object(transfer: Transfer) -> dict[str, Any]:
    """The ``transfer`` attribute of the new task."""
    return {
        "id": transfer.id,
        "mode": transfer.mode,
        "from_worker_sid": transfer.from_worker_sid,
        "from_worker_name": transfer.from_worker_name,
        "from_task_sid": transfer.from_task_sid,
        "attempt": transfer.attempt,
        "route_version": transfer.route_version,
        "notes": transfer.notes,
        "previous_transfer_id": transfer.previous_transfer_id,
        "earlier_transfers": transfer.earlier_transfers,
        "summary": transfer.summary,
        "context": transfer.context,
    }


def new_task_attributes(transfer: Transfer, original: dict[str, Any]) -> dict[str, Any]:
    """The original task's attributes, minus its invite keys, plus the routing keys and ``transfer``,
    fitted to TaskRouter's limit (raises AttributesTooLarge when even the routing keys do not fit)."""
    base = {key: value for key, value in original.items() if key not in INVITE_KEYS}
    base.update(routing_keys(transfer))
    return fit_attributes(base, transfer_object(transfer))


def _entry(transfer: Transfer, now: float, event: str, **details: Any) -> Transfer:
    entry = TimelineEntry(at=now, state=transfer.status, event=event, **details)
    return dataclasses.replace(transfer, timeline=transfer.timeline + (entry,), updated_at=now)


def _move(transfer: Transfer, now: float, status: str, event: str, detail: dict[str, Any] | None = None,
          **changes: Any) -> Transfer:
    """Change state (and fields), recording the timeline entry with ``detail``."""
    return _entry(dataclasses.replace(transfer, status=status, **changes), now, event, **(detail or {}))


def _fail(transfer: Transfer, now: float, event: str, reason: str, code: int | None = None) -> Step:
    failed = _move(transfer, now, FAILED, event, {"reason": reason, "code": code}, failure_reason=reason,
                   failure_code=code)
    # After acceptance the new agent has the customer: their task is never canceled.
    cancel = (CancelNewTask(reason),) if transfer.new_task_sid and transfer.status != ACCEPTED else ()
    return Step(failed, cancel)


def advance(transfer: Transfer, event: Event, settings: Settings, now: float) -> Step:
    """The next state of ``transfer`` after ``event``, and what must be done about it."""
    if transfer.is_final:
        return Step(transfer)
    handler = _HANDLERS[type(event)]
    return handler(transfer, event, settings, now)


def start(transfer: Transfer, now: float, task: dict[str, Any] | None = None) -> Step:
    """A newly requested transfer: record it and ask for it to be prepared, from ``task`` (the original task as
    read by whoever asked for the transfer) when given."""
    return Step(_entry(dataclasses.replace(transfer, created_at=now), now, "requested"), (Prepare(task),))


def _prepared(transfer: Transfer, event: Prepared, settings: Settings, now: float) -> Step:
    if transfer.status != REQUESTED:
        return Step(transfer)
    fallback = event.fallback_queue_sid or event.original_queue_sid
    if transfer.target_type == ROUTE_QUEUE:
        route, queue_sid = ROUTE_QUEUE, transfer.target_sid
    elif transfer.target_type == ROUTE_WORKFLOW:
        route, queue_sid = ROUTE_WORKFLOW, None
    elif event.target_available:
        route, queue_sid = ROUTE_WORKER, fallback
    else:
        route, queue_sid = ROUTE_QUEUE, fallback
    excluded = tuple(dict.fromkeys((transfer.from_worker_sid, *event.agents_in_conversation)))
    # An agent target is the one agent not excluded even if already in the conversation (warm back).
    if transfer.target_type == ROUTE_WORKER:
        excluded = tuple(sid for sid in excluded if sid != transfer.target_sid)
    routed = _move(
        transfer, now, ROUTING, "routing" if route == transfer.target_type else "target unavailable, routing to queue",
        route=route, queue_sid=queue_sid, excluded_workers=excluded, interaction_sid=event.interaction_sid,
        channel_sid=event.channel_sid, conversation_sid=event.conversation_sid, task_channel=event.task_channel,
        sender_participant_sid=event.sender_participant_sid,
        sender_conversation_participant_sid=event.sender_conversation_participant_sid,
        customer_participant_sids=event.customer_participant_sids, previous_transfer_id=event.previous_transfer_id,
        earlier_transfers=event.earlier_transfers, from_worker_name=event.sender_name, context=event.context,
        summary=event.summary,
    )
    if event.summary_fallback:
        routed = _entry(routed, now, "summary by the extractive summarizer", reason=event.summary_fallback)
    try:
        attributes = new_task_attributes(routed, event.original_attributes)
    except AttributesTooLarge as exc:
        return _fail(routed, now, "attributes too large", str(exc))
    workflow = transfer.target_sid if route == ROUTE_WORKFLOW else None
    notice = (NotifyCustomer(settings.customer_notice_text),) if settings.customer_notice_enabled else ()
    return Step(routed, (CreateInvite(attributes, workflow), *notice))


def _invite_created(transfer: Transfer, event: InviteCreated, settings: Settings, now: float) -> Step:
    if transfer.new_task_sid is not None:
        return Step(transfer)
    return Step(_entry(dataclasses.replace(transfer, new_task_sid=event.task_sid, invite_sid=event.invite_sid),
                       now, "invite created", reason=event.task_sid))


def _offer_detail(event: ReservationCreated | ReservationAccepted | ReservationEnded) -> dict[str, str]:
    return {"worker_sid": event.worker_sid, "reservation_sid": event.reservation_sid}


def _offer_seen(transfer: Transfer, reservation_sid: str) -> Transfer:
    """Count an offer once, whichever of its events arrives first."""
    if reservation_sid in transfer.seen_reservations:
        return transfer
    return dataclasses.replace(transfer, seen_reservations=transfer.seen_reservations + (reservation_sid,),
                               attempt=transfer.attempt + 1)


def _offer_overtaken(transfer: Transfer, reservation_sid: str, worker_sid: str, now: float) -> Transfer:
    """Count an offer first heard of by its end or acceptance, and show it in the timeline all the same."""
    if reservation_sid in transfer.seen_reservations:
        return transfer
    return _entry(_offer_seen(transfer, reservation_sid), now, "offered", worker_sid=worker_sid,
                  reservation_sid=reservation_sid)


def _is_refused_reoffer(transfer: Transfer, reservation_sid: str, worker_sid: str) -> bool:
    """An offer to an excluded agent: Baton refuses it and it never counts as an attempt."""
    return reservation_sid in transfer.refused_reservations or (
        worker_sid in transfer.excluded_workers and reservation_sid not in transfer.seen_reservations)


def _reservation_created(transfer: Transfer, event: ReservationCreated, settings: Settings, now: float) -> Step:
    if (transfer.status not in (ROUTING, OFFERED) or event.reservation_sid in transfer.finished_reservations
            or event.reservation_sid in transfer.refused_reservations
            or event.reservation_sid in dict(transfer.live_offers)):
        return Step(transfer)
    if _is_refused_reoffer(transfer, event.reservation_sid, event.worker_sid):
        # TaskRouter may keep offering an agent who declined (the same known worker, or a task kept
        # in its step because the re-route landed while it was reserved).
        refused = _entry(_refuse(transfer, event.reservation_sid), now, "offer to excluded agent refused",
                         **_offer_detail(event))
        return _refuse_and_reroute(refused, (event.reservation_sid,))
    offered = _move(_offer_seen(transfer, event.reservation_sid), now, OFFERED, "offered", _offer_detail(event),
                    live_offers=transfer.live_offers + ((event.reservation_sid, event.worker_sid),))
    return Step(offered)


def _refuse(transfer: Transfer, reservation_sid: str) -> Transfer:
    return dataclasses.replace(transfer, refused_reservations=transfer.refused_reservations + (reservation_sid,))


def _refuse_and_reroute(transfer: Transfer, refused: tuple[str, ...]) -> Step:
    """Refuse these offers, then write the route (as a change: a new version), so that a write lands
    once the task is pending again and TaskRouter re-drives it (an update made while it is reserved
    may not re-route it)."""
    actions: tuple[Action, ...] = tuple(RejectReservation(sid) for sid in refused)
    if transfer.route == ROUTE_WORKFLOW:
        # The target workflow routes the task; Baton only keeps excluded agents out.
        return Step(transfer, actions)
    rerouted = _next_route_version(transfer)
    return Step(rerouted.transfer, actions + rerouted.actions)


def coalesce(actions: tuple[Action, ...], transfer: Transfer) -> tuple[Action, ...]:
    """The actions still to carry out, less those the transfer's later events made pointless: the refusal of
    an offer that has ended since, and a write of the route followed by another with nothing between them
    (the later one carries the newer route).

    When Baton falls behind, an agent who declined can be re-offered the task and decline again several
    times before the exclusion is written; the events then arrive together, and each re-offer adds a refusal
    and a write. Carried out one by one they would cost three Twilio requests per re-offer, more work the
    further behind Baton is; coalesced, however many re-offers came, what is left is the exclusion, the
    refusal of the re-offer still live, if any, and the write that re-drives the task."""
    kept: list[Action] = []
    for action in actions:
        if isinstance(action, RejectReservation) and action.reservation_sid in transfer.finished_reservations:
            continue
        if isinstance(action, Reroute) and kept and isinstance(kept[-1], Reroute):
            kept.pop()
        kept.append(action)
    return tuple(kept)


def _next_route_version(transfer: Transfer) -> Step:
    """Write the route in force as a new version."""
    rerouted = dataclasses.replace(transfer, route_version=transfer.route_version + 1)
    return Step(rerouted, (Reroute(routing_keys(rerouted), rerouted.attempt, rerouted.route_version),))


def _reservation_ended(transfer: Transfer, event: ReservationEnded, settings: Settings, now: float) -> Step:
    if transfer.status not in (ROUTING, OFFERED) or event.reservation_sid in transfer.finished_reservations:
        return Step(transfer)
    if _is_refused_reoffer(transfer, event.reservation_sid, event.worker_sid):
        # Over, whoever ended it: a refusal of it still waiting to be made is left out (``coalesce``).
        refused = (transfer if event.reservation_sid in transfer.refused_reservations
                   else _refuse(transfer, event.reservation_sid))
        return Step(dataclasses.replace(refused, finished_reservations=(*refused.finished_reservations,
                                                                        event.reservation_sid)))
    live = tuple(offer for offer in transfer.live_offers if offer[0] != event.reservation_sid)
    finished = dataclasses.replace(transfer, live_offers=live,
                                   finished_reservations=transfer.finished_reservations + (event.reservation_sid,))
    if event.outcome in ("rescinded", "canceled"):
        # TaskRouter withdrew the offer (another agent accepted, or the task ended): not a refusal.
        withdrawn = _entry(finished, now, f"offer {event.outcome}", **_offer_detail(event))
        return Step(withdrawn if live else _move(withdrawn, now, ROUTING, "routing"))
    return _declined(finished, event, settings, now)


def _declined(transfer: Transfer, event: ReservationEnded, settings: Settings, now: float) -> Step:
    """An agent declined (or let the offer time out): exclude them, refuse their other live offers,
    and fail or route on once no offer is live."""
    declined = _offer_overtaken(transfer, event.reservation_sid, event.worker_sid, now)
    declined = _entry(dataclasses.replace(declined, excluded_workers=tuple(dict.fromkeys(
        (*declined.excluded_workers, event.worker_sid)))), now, f"offer {event.outcome}", **_offer_detail(event))
    # An offer to the same agent that TaskRouter made before the decline reached Baton: refused, not counted.
    refused = tuple(sid for sid, worker_sid in declined.live_offers if worker_sid == event.worker_sid)
    if refused:
        declined = dataclasses.replace(
            declined, live_offers=tuple(offer for offer in declined.live_offers if offer[0] not in refused),
            seen_reservations=tuple(sid for sid in declined.seen_reservations if sid not in refused),
            refused_reservations=declined.refused_reservations + refused, attempt=declined.attempt - len(refused))
    rejects = tuple(RejectReservation(sid) for sid in refused)
    # While other agents hold live offers, the first of them to accept has it.
    status = OFFERED if declined.live_offers else ROUTING
    if status == ROUTING and declined.attempt >= settings.max_attempts:
        failed = _fail(declined, now, "max attempts reached", f"no agent accepted after {declined.attempt} offers")
        return Step(failed.transfer, rejects + failed.actions)
    if declined.route == ROUTE_WORKFLOW:
        # The target workflow routes its own rejections; Baton only counts the offers.
        return Step(_move(declined, now, status, "routing"), rejects)
    rerouted = _move(declined, now, status, "re-routing to queue", route=ROUTE_QUEUE,
                     queue_sid=declined.queue_sid or declined.target_sid)
    if not refused:
        return _refuse_and_reroute(rerouted, refused)
    # TaskRouter has already offered the task to the same agent again. The exclusion is written while that
    # offer holds the task, so that refusing it does not make TaskRouter offer it to them once more before the
    # next write lands: write, refuse, then write the route again to re-drive the task, pending by then.
    excluded = _next_route_version(rerouted)
    refusal = _refuse_and_reroute(excluded.transfer, refused)
    return Step(refusal.transfer, excluded.actions + refusal.actions)


def _reservation_accepted(transfer: Transfer, event: ReservationAccepted, settings: Settings, now: float) -> Step:
    # An excluded agent may accept an offer before Baton's refusal of it lands: TaskRouter has then
    # assigned them the task, which cannot be refused any more, so they have the transfer.
    if transfer.status not in (ROUTING, OFFERED) or event.reservation_sid in transfer.finished_reservations:
        return Step(transfer)
    accepted = _move(_offer_overtaken(transfer, event.reservation_sid, event.worker_sid, now), now, ACCEPTED,
                     "accepted", _offer_detail(event),
                     accepted_worker_sid=event.worker_sid, accepted_reservation_sid=event.reservation_sid,
                     live_offers=())
    if transfer.mode == "warm":
        return Step(accepted)
    if transfer.sender_closed:
        return Step(_move(accepted, now, COMPLETED, "completed"))
    if transfer.close_requested:
        return Step(accepted)
    return _close_sender(accepted, settings)


def _close_sender(transfer: Transfer, settings: Settings) -> Step:
    return Step(dataclasses.replace(transfer, close_requested=True),
                (CloseSender("wrapup" if settings.sender_wrapup else "closed"),))


def _task_queue_entered(transfer: Transfer, event: TaskQueueEntered, settings: Settings, now: float) -> Step:
    closes_on_queue = (settings.close_sender_on == "queued" and transfer.mode == "cold"
                       and transfer.target_type == ROUTE_QUEUE and event.queue_sid == transfer.target_sid)
    if transfer.status not in (ROUTING, OFFERED) or transfer.close_requested or not closes_on_queue:
        return Step(transfer)
    return _close_sender(_entry(transfer, now, "entered queue, closing sender", reason=event.queue_sid), settings)


def _workflow_timed_out(transfer: Transfer, event: WorkflowTimedOut, settings: Settings, now: float) -> Step:
    if transfer.status != ROUTING:
        # While an offer is live, that offer decides what happens next.
        return Step(transfer)
    if transfer.target_type == ROUTE_WORKER:
        # Only the transfer workflow's agent step has a timeout. On the agent route: the agent did
        # not answer in time (or became unavailable), and, as with a declined offer, the next
        # available agent gets it. Already on the queue route: the late end of that same step,
        # which the re-route (re-driving the task into the queue filter) has already overtaken.
        if transfer.route != ROUTE_WORKER:
            return Step(transfer)
        excluded = tuple(dict.fromkeys((*transfer.excluded_workers, transfer.target_sid)))
        rerouted = _move(transfer, now, ROUTING, "target step timed out, re-routing to queue", route=ROUTE_QUEUE,
                         excluded_workers=excluded)
        return _refuse_and_reroute(rerouted, ())
    return _fail(transfer, now, "workflow timeout", "the new task timed out of its workflow")


def _sender_closed(transfer: Transfer, event: SenderClosed, settings: Settings, now: float) -> Step:
    return _sender_gone(transfer, now, "sender closed")


def _sender_gone(transfer: Transfer, now: float, what: str) -> Step:
    """The sender is out of the conversation (closed by Baton, or left): after acceptance, done."""
    if transfer.sender_closed:
        return Step(transfer)
    gone = _entry(dataclasses.replace(transfer, sender_closed=True), now, what)
    if transfer.status == ACCEPTED:
        return Step(_move(gone, now, COMPLETED, "completed"))
    return Step(gone)


def _new_task_ended(transfer: Transfer, event: NewTaskEnded, settings: Settings, now: float) -> Step:
    if transfer.status == ACCEPTED:
        return Step(transfer)
    reason = f"{event.event_type}: {event.reason}" if event.reason else event.event_type
    failed = _move(transfer, now, FAILED, "new task ended", {"reason": reason}, failure_reason=reason)
    return Step(failed)


def _cancel_requested(transfer: Transfer, event: CancelRequested, settings: Settings, now: float) -> Step:
    if transfer.status == ACCEPTED:
        return Step(transfer)
    canceled = _move(transfer, now, CANCELED, "canceled", {"worker_sid": event.by})
    return Step(canceled, (CancelNewTask("transfer canceled"),) if transfer.new_task_sid else ())


def _leave_requested(transfer: Transfer, event: LeaveRequested, settings: Settings, now: float) -> Step:
    if transfer.status != ACCEPTED or transfer.mode != "warm" or transfer.close_requested:
        return Step(transfer)
    return _close_sender(_entry(transfer, now, "sender leaving", worker_sid=event.by), settings)


def _conversation_closed(transfer: Transfer, event: ConversationClosed, settings: Settings, now: float) -> Step:
    if transfer.status == ACCEPTED:
        # Whoever accepted had the customer until the end: the transfer did its job.
        return Step(_move(transfer, now, COMPLETED, "conversation closed"))
    canceled = _move(transfer, now, CANCELED, "conversation closed", {"reason": "the conversation was closed"})
    return Step(canceled, (CancelNewTask("conversation closed"),) if transfer.new_task_sid else ())


def _participant_left(transfer: Transfer, event: ParticipantLeft, settings: Settings, now: float) -> Step:
    if event.participant_sid == transfer.sender_conversation_participant_sid:
        # The sender ended their own task: nothing left to close.
        return _sender_gone(transfer, now, "sender left")
    if event.participant_sid not in transfer.customer_participant_sids or transfer.status == ACCEPTED:
        return Step(transfer)
    canceled = _move(transfer, now, CANCELED, "customer left", {"reason": "the customer left the conversation"})
    return Step(canceled, (CancelNewTask("customer left"),) if transfer.new_task_sid else ())


def _deadline_passed(transfer: Transfer, event: DeadlinePassed, settings: Settings, now: float) -> Step:
    if transfer.status == ACCEPTED:
        return Step(transfer)
    return _fail(transfer, now, "transfer timeout", f"not accepted within {settings.transfer_timeout_s} s")


def _action_failed(transfer: Transfer, event: ActionFailed, settings: Settings, now: float) -> Step:
    return _fail(transfer, now, f"{event.action} failed", event.reason, event.code)


_HANDLERS = {
    Prepared: _prepared,
    InviteCreated: _invite_created,
    ReservationCreated: _reservation_created,
    ReservationAccepted: _reservation_accepted,
    ReservationEnded: _reservation_ended,
    TaskQueueEntered: _task_queue_entered,
    WorkflowTimedOut: _workflow_timed_out,
    NewTaskEnded: _new_task_ended,
    SenderClosed: _sender_closed,
    CancelRequested: _cancel_requested,
    LeaveRequested: _leave_requested,
    ConversationClosed: _conversation_closed,
    ParticipantLeft: _participant_left,
    DeadlinePassed: _deadline_passed,
    ActionFailed: _action_failed,
}
