"""``baton setup``: point a Flex account at this Baton deployment, the same way every time.

Setup manages these things, through the gateway only:
- the transfer workflow ``TRANSFER_WORKFLOW_SID``: its configuration is ``transfer_workflow_configuration``
  (docs/contracts.md §2.5) over the workspace's task queues, and its ``TaskReservationTimeout`` is the offer timeout;
- the everyone queue that configuration needs (``target_workers`` ``1==1``), created as "Everyone" if missing;
- how TaskRouter's events reach Baton (``--events``), one of:
  - ``callback``: the workspace's ``EventCallbackUrl`` (``PUBLIC_BASE_URL/webhooks/taskrouter``) and
    ``EventsFilter`` (exactly the TaskRouter events Baton acts on);
  - ``streams``: one Event Streams webhook sink (``PUBLIC_BASE_URL/webhooks/event-streams``, with this
    deployment's credentials in its URL, ``baton.infrastructure.eventstreams``), active, and one subscription of it to
    exactly those events; the workspace's ``EventCallbackUrl`` is never touched;
  - ``auto`` (the default): ``streams`` when Baton already has a sink, or when the callback URL is another
    application's (a workspace has one callback, an account many sinks: Baton then lives beside that
    application instead of asking for ``--force``); else ``callback``, the shorter path that Baton's
    load tests measure, which nothing else is using;
- the account's Conversations post-event webhook (``PUBLIC_BASE_URL/webhooks/conversations``);
- the Flex conversation service's own post-event webhook, only when it has one.

Event Streams: sinks cannot be changed but for their description, so a sink of Baton's URL with other
credentials (the auth token was rotated) or another method is replaced: the new sink and its subscription
are made first, the old ones deleted after, so no event is lost meanwhile (one that comes both ways is
handled once). A sink that is not active is tested (Twilio sends it a test event, which the web process
records) and validated with that test's id; Twilio now documents sinks as active at once, older
documentation and the API description ask for that validation first (docs/twilio-behaviour.md §14).

Where Conversations events go: a service's own post-event URL gets its conversations' events
instead of the account's global one, or besides it (docs/twilio-behaviour.md; the simulator plays
both). The Flex conversation service is the account's default service (Flex requires it to be, and
it is the one ``/v1/Conversations`` serves), so setup learns its sid from ``/v1/Configuration``.
Baton's URL goes on the global configuration always, and on the service's own too when that has a
post-event URL: where it overrides the global one, Baton would hear nothing otherwise. Setup never
gives the service a post-event URL it has none of: that would take the Flex conversations' events
away from another application on the global webhook. Where both are called, Baton may receive an
event twice; the events it acts on are idempotent.

Reading, planning and writing are separate steps: ``read_state`` reads what Twilio has now,
``plan_setup`` (pure) turns it into the settings setup manages, each with its value now and the
value setup wants, and the writes that make the difference, and ``apply_plan`` makes the writes.
A second run finds nothing to change and writes nothing. Another application's callback URL or
Conversations webhook is never replaced without ``--force`` (and ``--events callback``, when the callback
is in question: ``auto`` goes through Event Streams instead).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import parse_qsl, urldefrag, urlencode, urlsplit, urlunsplit

import redis

from baton.domain.twilio_events import CONVERSATION_EVENTS, CONVERSATIONS_PRE_ACTION_EVENTS, TRANSFER_EVENTS
from baton.domain.workflow import transfer_workflow_configuration
from baton.infrastructure import eventstreams
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store, connect_redis
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TwilioError, TwilioGateway

TASKROUTER_PATH = "/webhooks/taskrouter"
CONVERSATIONS_PATH = "/webhooks/conversations"
EVERYONE_EXPRESSION = "1==1"
EVERYONE_QUEUE_NAME = "Everyone"
# Stands for the sid of the everyone queue setup is about to create (a dry run never learns it).
NEW_EVERYONE_QUEUE = "(new queue)"

# Exactly the TaskRouter events Baton acts on (baton.domain.twilio_events), in Twilio's comma-separated form.
EVENTS_FILTER = ",".join(sorted(TRANSFER_EVENTS))
WEBHOOK_METHOD = "POST"
WEBHOOK_TARGET = "webhook"

EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 2

EVENTS_MODES = ("auto", "streams", "callback")
# Stands for the sid of the sink setup is about to create.
NEW_SINK = "(new sink)"
SINK_METHOD = "POST"
# How long setup waits for the web process to receive a sink's test event.
SINK_TEST_WAIT_S = 10.0
VALIDATE_TRIES = 4


class SetupError(Exception):
    """The account cannot be set up as configured (e.g. FALLBACK_QUEUE_SID is not a queue of the workspace)."""


# What Twilio has now


@dataclass(frozen=True)
class Queue:
    sid: str
    friendly_name: str
    target_workers: str


@dataclass(frozen=True)
class Workflow:
    """A workflow as TaskRouter stores it: ``configuration`` is the JSON text."""

    sid: str
    friendly_name: str
    configuration: str
    task_reservation_timeout: int


@dataclass(frozen=True)
class ConversationsWebhook:
    """The account's global Conversations webhooks (``/v1/Configuration/Webhooks``)."""

    post_webhook_url: str | None
    pre_webhook_url: str | None
    filters: tuple[str, ...]
    method: str | None
    target: str | None


@dataclass(frozen=True)
class ServiceWebhook:
    """The Flex conversation service's own webhooks (``/v1/Services/{IS}/Configuration/Webhooks``)."""

    service_sid: str
    post_webhook_url: str | None
    pre_webhook_url: str | None
    filters: tuple[str, ...]
    method: str | None


@dataclass(frozen=True)
class StreamSink:
    """An Event Streams webhook sink whose destination is Baton's URL (credentials aside)."""

    sid: str
    status: str
    destination: str
    method: str
    batch_events: bool | None


@dataclass(frozen=True)
class StreamSubscription:
    sid: str
    sink_sid: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class EventStreamsState:
    """Baton's Event Streams sinks (every webhook sink delivering to Baton's URL, in Twilio's order) and their
    subscriptions with their types."""

    sinks: tuple[StreamSink, ...] = ()
    subscriptions: tuple[StreamSubscription, ...] = ()


@dataclass(frozen=True)
class AccountState:
    """Everything setup manages, as Twilio has it now (``service_webhook`` None: the account has no default
    Conversations service; ``streams`` None: Event Streams not read, as with ``--events callback``)."""

    workspace_sid: str
    workspace_name: str
    event_callback_url: str | None
    events_filter: str | None
    queues: tuple[Queue, ...]
    workflow: Workflow
    webhook: ConversationsWebhook
    service_webhook: ServiceWebhook | None = None
    streams: EventStreamsState | None = None


def read_state(gateway: TwilioGateway, workflow_sid: str, public_base_url: str | None = None) -> AccountState:
    """Read what setup manages (Event Streams too when ``public_base_url`` is given); raises TwilioError (401: bad
    credentials, 404: a sid that does not exist)."""
    workspace = gateway.fetch_workspace()
    queues = tuple(Queue(q["sid"], q["friendly_name"], q["target_workers"] or "") for q in gateway.list_task_queues())
    workflow = read_workflow(gateway, workflow_sid)
    return AccountState(workspace["sid"], workspace["friendly_name"], workspace["event_callback_url"],
                        workspace["events_filter"], queues, workflow, read_webhook(gateway),
                        read_service_webhook(gateway),
                        read_streams(gateway, public_base_url) if public_base_url is not None else None)


def read_streams(gateway: TwilioGateway, public_base_url: str) -> EventStreamsState:
    """The webhook sinks delivering to ``PUBLIC_BASE_URL/webhooks/event-streams`` and their subscriptions."""
    ours = eventstreams.sink_url(public_base_url)
    sinks = []
    for record in gateway.list_sinks():
        configuration = record["sink_configuration"]
        destination = configuration.get("destination")
        if record["sink_type"] != "webhook" or not isinstance(destination, str):
            continue
        if eventstreams.without_userinfo(destination) != ours:
            continue
        batch = configuration.get("batch_events")
        sinks.append(StreamSink(record["sid"], record["status"] or "", destination,
                                str(configuration.get("method") or ""), batch if isinstance(batch, bool) else None))
    subscriptions = tuple(
        StreamSubscription(subscription["sid"], sink.sid, tuple(gateway.list_subscribed_events(subscription["sid"])))
        for sink in sinks for subscription in gateway.list_subscriptions(sink.sid))
    return EventStreamsState(tuple(sinks), subscriptions)


def read_workflow(gateway: TwilioGateway, workflow_sid: str) -> Workflow:
    record = gateway.fetch_workflow(workflow_sid)
    return Workflow(record["sid"], record["friendly_name"], record["configuration"] or "",
                    int(record["task_reservation_timeout"] or 0))


def read_webhook(gateway: TwilioGateway) -> ConversationsWebhook:
    record = gateway.fetch_conversations_webhook()
    return ConversationsWebhook(record["post_webhook_url"], record["pre_webhook_url"], tuple(record["filters"]),
                                record["method"], record["target"])


def read_service_webhook(gateway: TwilioGateway) -> ServiceWebhook | None:
    """The default Conversations service's webhooks, or None when the account has no default service."""
    service_sid = gateway.fetch_default_conversation_service_sid()
    if service_sid is None:
        return None
    record = gateway.fetch_service_webhook(service_sid)
    return ServiceWebhook(service_sid, record["post_webhook_url"], record["pre_webhook_url"],
                          tuple(record["filters"]), record["method"])


# What setup does


@dataclass(frozen=True)
class Setting:
    """One value setup manages: ``old`` is Twilio's now, ``new`` what setup leaves (both for people, no secrets).

    details: extra lines for a change too big for one line (the workflow's filters added and removed).
    """

    name: str
    old: str
    new: str
    changed: bool
    details: tuple[str, ...] = ()

    def lines(self, verb: str = "changed") -> list[str]:
        if not self.changed:
            return [f"unchanged: {self.name}: {self.new}"]
        return [f"{verb}: {self.name}: {self.old} → {self.new}", *(f"    {line}" for line in self.details)]


@dataclass(frozen=True)
class CreateQueue:
    """POST …/TaskQueues: the everyone queue."""

    friendly_name: str
    target_workers: str

    def describe(self) -> str:
        return f'create task queue "{self.friendly_name}" ({self.target_workers})'


@dataclass(frozen=True)
class UpdateWorkflow:
    """POST …/Workflows/{WW}: the arguments of ``transfer_workflow_configuration`` and the reservation timeout."""

    workflow_sid: str
    everyone_queue_sid: str
    queue_sids: tuple[str, ...]
    fallback_queue_sid: str
    offer_timeout_s: int

    def configuration(self, created: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The configuration to write; ``created`` maps NEW_EVERYONE_QUEUE to the queue's sid once it exists."""
        sid = (created or {}).get
        return transfer_workflow_configuration(sid(self.everyone_queue_sid, self.everyone_queue_sid),
                                               [sid(q, q) for q in self.queue_sids],
                                               sid(self.fallback_queue_sid, self.fallback_queue_sid),
                                               self.offer_timeout_s)

    def describe(self) -> str:
        return f"update transfer workflow {self.workflow_sid}"


@dataclass(frozen=True)
class UpdateWorkspace:
    """POST /v1/Workspaces/{WS}: ``EventCallbackUrl`` and ``EventsFilter``."""

    event_callback_url: str
    events_filter: str

    def describe(self) -> str:
        return "update the workspace's event callback"


@dataclass(frozen=True)
class UpdateConversationsWebhook:
    """POST /v1/Configuration/Webhooks: the post-event URL, filters, method and target."""

    post_webhook_url: str
    filters: tuple[str, ...]
    method: str
    target: str

    def describe(self) -> str:
        return "update the Conversations webhook"


@dataclass(frozen=True)
class UpdateServiceWebhook:
    """POST /v1/Services/{IS}/Configuration/Webhooks: the post-event URL, filters and method."""

    service_sid: str
    post_webhook_url: str
    filters: tuple[str, ...]
    method: str

    def describe(self) -> str:
        return f"update the Conversations webhook of service {self.service_sid}"


@dataclass(frozen=True)
class CreateSink:
    """POST events.twilio.com/v1/Sinks: a webhook sink (``destination`` carries the credentials: never printed)."""

    destination: str = ""
    description: str = eventstreams.SINK_DESCRIPTION

    def configuration(self) -> dict[str, Any]:
        return {"destination": self.destination, "method": SINK_METHOD, "batch_events": True}

    def describe(self) -> str:
        return "create the Event Streams sink"


@dataclass(frozen=True)
class ActivateSink:
    """When the sink is not active: POST …/Sinks/{DG}/Test, wait for the web process to receive the test event,
    then POST …/Sinks/{DG}/Validate with its id."""

    sink_sid: str

    def describe(self) -> str:
        return f"activate the Event Streams sink {self.sink_sid} (test event, then validation)"


@dataclass(frozen=True)
class CreateSubscription:
    """POST …/Subscriptions: the sink's subscription to ``types``."""

    sink_sid: str
    types: tuple[str, ...]
    description: str = eventstreams.SUBSCRIPTION_DESCRIPTION

    def describe(self) -> str:
        return f"subscribe the Event Streams sink {self.sink_sid} to Baton's events"


@dataclass(frozen=True)
class AddSubscribedEvent:
    """POST …/Subscriptions/{DF}/SubscribedEvents with ``Type``."""

    subscription_sid: str
    event_type: str

    def describe(self) -> str:
        return f"add {self.event_type} to subscription {self.subscription_sid}"


@dataclass(frozen=True)
class RemoveSubscribedEvent:
    """DELETE …/Subscriptions/{DF}/SubscribedEvents/{Type}."""

    subscription_sid: str
    event_type: str

    def describe(self) -> str:
        return f"remove {self.event_type} from subscription {self.subscription_sid}"


@dataclass(frozen=True)
class DeleteSubscription:
    subscription_sid: str

    def describe(self) -> str:
        return f"delete the Event Streams subscription {self.subscription_sid}"


@dataclass(frozen=True)
class DeleteSink:
    sink_sid: str

    def describe(self) -> str:
        return f"delete the Event Streams sink {self.sink_sid}"


Write = (CreateQueue | UpdateWorkflow | UpdateWorkspace | UpdateConversationsWebhook | UpdateServiceWebhook
         | CreateSink | ActivateSink | CreateSubscription | AddSubscribedEvent | RemoveSubscribedEvent
         | DeleteSubscription | DeleteSink)


@dataclass(frozen=True)
class Plan:
    """What setup found and what it would do.

    notes: explanations of the choices made (which queue is the everyone queue, the fallback queue).
    settings: every managed value, changed or not, in the order they are printed.
    writes: the requests that make the changes, in order; none when everything is set up.
    refusals: another application's configuration that the writes would replace (needs ``--force``).
    """

    notes: tuple[str, ...]
    settings: tuple[Setting, ...]
    writes: tuple[Write, ...]
    refusals: tuple[str, ...] = ()


def plan_setup(state: AccountState, config: Config, offer_timeout_s: int, events: str = "auto") -> Plan:
    """The plan that brings ``state`` to what this deployment needs (pure: no I/O); ``events`` is ``--events``."""
    mode, why = choose_events(state, config.public_base_url, events)
    path = (plan_streams(state, config) if mode == "streams"
            else plan_workspace(state, config.public_base_url))
    parts = [plan_workflow(state.queues, state.workflow, config.fallback_queue_sid, offer_timeout_s),
             Plan((why,), (), ()), path,
             plan_webhook(state.webhook, config.public_base_url),
             plan_service_webhook(state.service_webhook, config.public_base_url)]
    return Plan(tuple(n for p in parts for n in p.notes), tuple(s for p in parts for s in p.settings),
                tuple(w for p in parts for w in p.writes), tuple(r for p in parts for r in p.refusals))


def choose_events(state: AccountState, public_base_url: str, events: str) -> tuple[str, str]:
    """``streams`` or ``callback`` for ``--events`` (``auto`` decided from the account), and why, for the output."""
    if events not in EVENTS_MODES:
        raise SetupError(f"--events is one of {', '.join(EVENTS_MODES)}, not {events!r}")
    callback = state.event_callback_url or ""
    if events == "streams":
        return "streams", "events: through Event Streams (--events streams); the workspace's EventCallbackUrl is " \
                          "left as it is"
    if events == "callback":
        return "callback", "events: through the workspace's EventCallbackUrl (--events callback)"
    if state.streams is not None and state.streams.sinks:
        return "streams", "events: through Event Streams, where Baton already has a sink (--events auto); the " \
                          "workspace's EventCallbackUrl is left as it is"
    if callback and not same_endpoint(callback, public_base_url + TASKROUTER_PATH):
        return "streams", (f"events: through Event Streams (--events auto): the workspace's EventCallbackUrl "
                           f"{redact_url(callback)} is another application's, and stays its own")
    return "callback", "events: through the workspace's EventCallbackUrl, which no other application uses " \
                       "(--events auto; --events streams for Event Streams)"


def plan_streams(state: AccountState, config: Config) -> Plan:
    """One webhook sink to Baton's URL with this deployment's credentials, active, and one subscription of it to
    exactly Baton's events; other sinks to Baton's URL (and their subscriptions) deleted once the new ones exist."""
    streams = state.streams or EventStreamsState()
    destination = eventstreams.sink_destination(config)
    shown = redact_url(destination)
    kept = next((sink for sink in streams.sinks if sink.destination == destination
                 and sink.method.upper() == SINK_METHOD), None)
    notes, settings, writes, removals = [], [], [], []
    if kept is None:
        sink_sid = NEW_SINK
        before = streams.sinks[0] if streams.sinks else None
        old = "(none)" if before is None else (f"{before.sid}, {redact_url(before.destination)} {before.method}, with "
                                               "other credentials or method")
        settings.append(Setting("Event Streams sink", old, f"{NEW_SINK} {shown} {SINK_METHOD}", changed=True))
        settings.append(Setting("Event Streams sink status", "(none)", "active", changed=True))
        writes += [CreateSink(destination), ActivateSink(NEW_SINK)]
        subscriptions: list[StreamSubscription] = []
    else:
        sink_sid = kept.sid
        settings.append(Setting("Event Streams sink", "", f"{kept.sid} {shown} {SINK_METHOD}", changed=False))
        settings.append(Setting(f"Event Streams sink {kept.sid} status", kept.status, "active",
                                changed=kept.status != "active"))
        if kept.status != "active":
            writes.append(ActivateSink(kept.sid))
        subscriptions = [s for s in streams.subscriptions if s.sink_sid == kept.sid]
    wanted = eventstreams.SUBSCRIBED_TYPES
    label = "Event Streams subscription types"
    if not subscriptions:
        settings.append(Setting(label, "(no subscription)", _short_types(wanted), changed=True))
        writes.append(CreateSubscription(sink_sid, wanted))
    else:
        subscription, *extra = subscriptions
        current = set(subscription.types)
        missing = [t for t in wanted if t not in current]
        unwanted = sorted(current - set(wanted))
        settings.append(Setting(f"{label} of {subscription.sid}", _short_types(sorted(current)) or "(none)",
                                _short_types(wanted), changed=bool(missing or unwanted)))
        writes += [AddSubscribedEvent(subscription.sid, t) for t in missing]
        writes += [RemoveSubscribedEvent(subscription.sid, t) for t in unwanted]
        removals += [DeleteSubscription(s.sid) for s in extra]
        if extra:
            notes.append(f"sink {kept.sid} has further subscriptions ({', '.join(s.sid for s in extra)}): "
                         "deleted, each would deliver every event once more")
    for sink in streams.sinks:
        if kept is not None and sink.sid == kept.sid:
            continue
        removals += [DeleteSubscription(s.sid) for s in streams.subscriptions if s.sink_sid == sink.sid]
        removals.append(DeleteSink(sink.sid))
        notes.append(f"the sink {sink.sid} to Baton's URL with other credentials or method is deleted once its "
                     "replacement is subscribed" if kept is None else
                     f"the further sink {sink.sid} to Baton's URL is deleted (with its subscriptions)")
    if removals:
        settings.append(Setting("other Event Streams sinks and subscriptions to Baton's URL",
                                ", ".join(w.sink_sid if isinstance(w, DeleteSink) else w.subscription_sid
                                          for w in removals), "(none)", changed=True))
    callback = state.event_callback_url or ""
    if same_endpoint(callback, config.public_base_url + TASKROUTER_PATH):
        notes.append("the workspace's EventCallbackUrl is Baton's too: each event arrives both ways and is handled "
                     "once (clear it in Console, TaskRouter, Workspace settings, to keep Event Streams only)")
    return Plan(tuple(notes), tuple(settings), tuple(writes + removals))


def _short_types(types: Sequence[str]) -> str:
    return ", ".join(t.removeprefix(eventstreams.TASKROUTER_TYPE_PREFIX) for t in types)


def is_everyone_queue(queue: Queue) -> bool:
    """Whether the queue's ``target_workers`` admits every worker (``1==1``, spaces aside)."""
    return "".join(queue.target_workers.split()) == EVERYONE_EXPRESSION


def plan_workflow(queues: Sequence[Queue], workflow: Workflow, fallback_queue_sid: str | None,
                  offer_timeout_s: int) -> Plan:
    """The everyone queue and the transfer workflow; raises SetupError if FALLBACK_QUEUE_SID is not a queue here."""
    names = {q.sid: q.friendly_name for q in queues}
    everyone = [q for q in queues if is_everyone_queue(q)]
    notes, settings, writes = [], [], []
    if everyone:
        everyone_sid = everyone[0].sid
        settings.append(Setting("everyone queue", "", f"{_queue_label(everyone_sid, names)}, target_workers "
                                f"{everyone[0].target_workers}", changed=False))
        if len(everyone) > 1:
            notes.append(f"several queues target every worker; the 'to worker' filter uses the first, "
                         f"{_queue_label(everyone_sid, names)}")
    else:
        everyone_sid = NEW_EVERYONE_QUEUE
        names[everyone_sid] = EVERYONE_QUEUE_NAME
        settings.append(Setting("everyone queue", f"none (no queue has target_workers {EVERYONE_EXPRESSION})",
                                f"{EVERYONE_QUEUE_NAME} {NEW_EVERYONE_QUEUE}, target_workers {EVERYONE_EXPRESSION}",
                                changed=True))
        notes.append(f"a transfer to an agent is offered through a queue every agent is in; the workspace has "
                     f'none, so setup creates "{EVERYONE_QUEUE_NAME}" ({EVERYONE_EXPRESSION})')
        writes.append(CreateQueue(EVERYONE_QUEUE_NAME, EVERYONE_EXPRESSION))

    if fallback_queue_sid is None:
        fallback_sid = everyone_sid
        notes.append(f"fallback queue: {_queue_label(fallback_sid, names)}, the everyone queue, since "
                     "FALLBACK_QUEUE_SID is not set: a transfer task that matches no filter waits there, never "
                     "stranded (re-routed transfers still go to the original task's queue)")
    elif fallback_queue_sid in names:
        fallback_sid = fallback_queue_sid
        notes.append(f"fallback queue: {_queue_label(fallback_sid, names)}, from FALLBACK_QUEUE_SID: re-routed "
                     "transfers and any transfer task that matches no filter go there")
    else:
        raise SetupError(f"FALLBACK_QUEUE_SID {fallback_queue_sid} is not a task queue of this workspace "
                         f"(its queues: {', '.join(_queue_label(q.sid, names) for q in queues) or 'none'})")

    update = UpdateWorkflow(workflow.sid, everyone_sid, tuple(sorted(names)), fallback_sid, offer_timeout_s)
    wanted = update.configuration()
    current = json_or_none(workflow.configuration)
    label = f"transfer workflow {workflow.sid} ({workflow.friendly_name})"
    old_lines, new_lines = _describe_routing(current, names), _describe_routing(wanted, names)
    settings.append(Setting(
        f"{label} configuration", _summary(current, names), _summary(wanted, names), changed=current != wanted,
        details=tuple([f"- {line}" for line in old_lines if line not in new_lines]
                      + [f"+ {line}" for line in new_lines if line not in old_lines])))
    settings.append(Setting(f"{label} TaskReservationTimeout", f"{workflow.task_reservation_timeout} s",
                            f"{offer_timeout_s} s", changed=workflow.task_reservation_timeout != offer_timeout_s))
    if current != wanted or workflow.task_reservation_timeout != offer_timeout_s:
        writes.append(update)
    return Plan(tuple(notes), tuple(settings), tuple(writes))


def plan_workspace(state: AccountState, public_base_url: str) -> Plan:
    """The workspace's EventCallbackUrl and EventsFilter."""
    ours = public_base_url + TASKROUTER_PATH
    current_url = state.event_callback_url or ""
    # Our URL with Twilio connection overrides (``#rc=3…``) added by the operator is still ours: kept as it is.
    url_is_ours = same_endpoint(current_url, ours)
    url = current_url if url_is_ours else ours
    refusals = []
    if current_url and not url_is_ours:
        refusals.append(f"the workspace's EventCallbackUrl {redact_url(current_url)} is another application's "
                        "(once replaced, it receives no more TaskRouter events)")
    current_events = event_set(state.events_filter)
    filter_ok = current_events == set(TRANSFER_EVENTS)
    name = f"workspace {state.workspace_sid} ({state.workspace_name})"
    settings = (
        Setting(f"{name} EventCallbackUrl", redact_url(current_url) or "(none)", redact_url(url),
                changed=not url_is_ours),
        Setting(f"{name} EventsFilter", state.events_filter or "(none: every event)", EVENTS_FILTER,
                changed=not filter_ok),
    )
    writes = () if url_is_ours and filter_ok else (UpdateWorkspace(url, EVENTS_FILTER),)
    return Plan((), settings, writes, tuple(refusals))


def plan_webhook(webhook: ConversationsWebhook, public_base_url: str) -> Plan:
    """The account's Conversations post-event webhook: URL, filters, method and target (the pre-event URL is kept)."""
    ours = public_base_url + CONVERSATIONS_PATH
    current_url = webhook.post_webhook_url or ""
    url_is_ours = same_endpoint(current_url, ours)
    url = current_url if url_is_ours else ours
    refusals = []
    if current_url and not url_is_ours:
        refusals.append(f"the Conversations post-event webhook {redact_url(current_url)} is another "
                        "application's (once replaced, it receives no more Conversations events)")
    if webhook.target not in (None, WEBHOOK_TARGET):
        refusals.append(f"the Conversations webhooks' target is {webhook.target!r}, not {WEBHOOK_TARGET!r} "
                        "(another integration receives the account's Conversations events there)")
    filters = webhook_filters(webhook.filters)
    method_ok = (webhook.method or "").upper() == WEBHOOK_METHOD
    target_ok = webhook.target == WEBHOOK_TARGET
    filters_ok = set(webhook.filters) == set(filters)
    settings = (
        Setting("Conversations post-event webhook URL", redact_url(current_url) or "(none)", redact_url(url),
                changed=not url_is_ours),
        Setting("Conversations webhook filters", ", ".join(webhook.filters) or "(none)", ", ".join(filters),
                changed=not filters_ok),
        Setting("Conversations webhook method", webhook.method or "(none)", WEBHOOK_METHOD, changed=not method_ok),
        Setting("Conversations webhook target", webhook.target or "(none)", WEBHOOK_TARGET, changed=not target_ok),
    )
    unchanged = url_is_ours and filters_ok and method_ok and target_ok
    writes = () if unchanged else (UpdateConversationsWebhook(url, filters, WEBHOOK_METHOD, WEBHOOK_TARGET),)
    notes = (f"Conversations events: {' and '.join(CONVERSATION_EVENTS)} (a conversation that closes or a "
             "customer who leaves ends the transfer); not onMessageAdded, which Baton does not need",)
    return Plan(notes, settings, writes, tuple(refusals))


def plan_service_webhook(service: ServiceWebhook | None, public_base_url: str) -> Plan:
    """The Flex conversation service's own post-event webhook: left without one when it has none (the
    global one then applies), else Baton's URL, filters and method (the pre-event URL is kept)."""
    if service is None:
        return Plan(("the account has no default Conversations service: only the global webhook is set up",), (), ())
    name = f"Conversations service {service.service_sid}"
    current_url = service.post_webhook_url or ""
    if not current_url:
        return Plan((), (Setting(f"{name} post-event webhook URL", "(none)", "(none: the global webhook applies)",
                                 changed=False),), ())
    ours = public_base_url + CONVERSATIONS_PATH
    url_is_ours = same_endpoint(current_url, ours)
    url = current_url if url_is_ours else ours
    refusals = () if url_is_ours else (
        f"the {name} post-event webhook {redact_url(current_url)} is another application's (Twilio sends it the "
        "Flex conversations' events; once replaced, it receives no more of them)",)
    filters = webhook_filters(service.filters)
    method_ok = (service.method or "").upper() == WEBHOOK_METHOD
    filters_ok = set(service.filters) == set(filters)
    settings = (
        Setting(f"{name} post-event webhook URL", redact_url(current_url), redact_url(url), changed=not url_is_ours),
        Setting(f"{name} webhook filters", ", ".join(service.filters) or "(none)", ", ".join(filters),
                changed=not filters_ok),
        Setting(f"{name} webhook method", service.method or "(none)", WEBHOOK_METHOD, changed=not method_ok),
    )
    unchanged = url_is_ours and filters_ok and method_ok
    writes = () if unchanged else (UpdateServiceWebhook(service.service_sid, url, filters, WEBHOOK_METHOD),)
    notes = (f"the Flex {name} has its own post-event webhook, which Twilio calls for its conversations instead "
             "of (or besides) the global one: Baton's URL goes there too",)
    return Plan(notes, settings, writes, refusals)


def webhook_filters(current: Sequence[str]) -> tuple[str, ...]:
    """The Filters of a webhook configuration whose post-event URL is Baton's: Baton's events, and the
    pre-action events already there (they drive the configuration's pre-event URL, maybe another application's)."""
    return tuple(sorted(set(CONVERSATION_EVENTS) | {event for event in current
                                                    if event in CONVERSATIONS_PRE_ACTION_EVENTS}))


class ApplyError(Exception):
    """A write failed; ``done`` are the writes made before it."""

    def __init__(self, write: Write, cause: TwilioError | SetupError, done: Sequence[Write]):
        super().__init__(f"{write.describe()}: {cause}")
        self.write, self.cause, self.done = write, cause, tuple(done)


def apply_plan(plan: Plan, gateway: TwilioGateway,
               sink_test: Callable[[float], str | None] | None = None) -> dict[str, str]:
    """Make the plan's writes in order; returns the sids of what was created (NEW_EVERYONE_QUEUE → WQ…, NEW_SINK →
    DG…). ``sink_test(since)`` is the id of a test event the web process received since then (None: none came)."""
    created: dict[str, str] = {}
    statuses: dict[str, str] = {}
    done: list[Write] = []
    for write in plan.writes:
        try:
            if isinstance(write, (CreateSink, ActivateSink, CreateSubscription, AddSubscribedEvent,
                                  RemoveSubscribedEvent, DeleteSubscription, DeleteSink)):
                _apply_streams_write(write, gateway, created, statuses, sink_test)
            elif isinstance(write, CreateQueue):
                queue = gateway.create_task_queue(write.friendly_name, write.target_workers)
                created[NEW_EVERYONE_QUEUE] = queue["sid"]
            elif isinstance(write, UpdateWorkflow):
                gateway.update_workflow(write.workflow_sid, write.configuration(created), write.offer_timeout_s)
            elif isinstance(write, UpdateWorkspace):
                gateway.update_workspace_events(write.event_callback_url, write.events_filter)
            elif isinstance(write, UpdateConversationsWebhook):
                gateway.update_conversations_webhook(write.post_webhook_url, list(write.filters), write.method,
                                                     write.target)
            else:
                gateway.update_service_webhook(write.service_sid, write.post_webhook_url, list(write.filters),
                                               write.method)
        except (TwilioError, SetupError) as exc:
            raise ApplyError(write, exc, done) from exc
        done.append(write)
    return created


def _apply_streams_write(write: Write, gateway: TwilioGateway, created: dict[str, str], statuses: dict[str, str],
                         sink_test: Callable[[float], str | None] | None) -> None:
    if isinstance(write, CreateSink):
        sink = gateway.create_sink(write.description, write.configuration())
        created[NEW_SINK], statuses[sink["sid"]] = sink["sid"], sink["status"]
    elif isinstance(write, ActivateSink):
        sid = created.get(write.sink_sid, write.sink_sid)
        if (statuses.get(sid) or gateway.fetch_sink(sid)["status"]) == "active":
            return
        since = time.time()
        gateway.test_sink(sid)
        test_id = sink_test(since) if sink_test is not None else None
        if test_id is None:
            raise SetupError(f"the test event of sink {sid} did not reach Baton within {SINK_TEST_WAIT_S:g} s: check "
                             "that the web process runs at PUBLIC_BASE_URL and shares this REDIS_URL, then run "
                             "`baton setup` again")
        validate_sink(gateway, sid, test_id)
    elif isinstance(write, CreateSubscription):
        gateway.create_subscription(write.description, created.get(write.sink_sid, write.sink_sid), list(write.types))
    elif isinstance(write, AddSubscribedEvent):
        gateway.add_subscribed_event(write.subscription_sid, write.event_type)
    elif isinstance(write, RemoveSubscribedEvent):
        gateway.remove_subscribed_event(write.subscription_sid, write.event_type)
    elif isinstance(write, DeleteSubscription):
        gateway.delete_subscription(write.subscription_sid)
    elif isinstance(write, DeleteSink):
        gateway.delete_sink(write.sink_sid)


def validate_sink(gateway: TwilioGateway, sink_sid: str, test_id: str, tries: int = VALIDATE_TRIES,
                  pause_s: float = 0.5) -> str | None:
    """POST …/Sinks/{DG}/Validate with ``TestId``; its ``result``. The web process records a test event before it
    answers Twilio, and Twilio counts it received once answered: a refusal (4xx) right after is tried again."""
    for attempt in range(1, tries + 1):
        try:
            return gateway.validate_sink(sink_sid, test_id)
        except PermanentTwilioError:
            if attempt == tries:
                raise
            time.sleep(pause_s)
    return None


def sink_test_waiter(config: Config, timeout_s: float | None = None) -> Callable[[float], str | None]:
    """``apply_plan``'s ``sink_test``: waits (SINK_TEST_WAIT_S) for the web process's record of a test event, other
    than the one recorded when it was made (the test is asked for right after)."""
    client = connect_redis(config.redis_url)
    try:
        known = eventstreams.last_sink_test(Store(client))
    except redis.RedisError:
        known = None
    finally:
        client.close()

    def wait(since: float) -> str | None:
        client = connect_redis(config.redis_url)
        try:
            return eventstreams.wait_for_sink_test(Store(client), since,
                                                   SINK_TEST_WAIT_S if timeout_s is None else timeout_s,
                                                   known=known[0] if known else None)
        except redis.RedisError:
            return None
        finally:
            client.close()
    return wait


# The command


def offer_timeout(config: Config) -> tuple[int, str]:
    """The offer timeout the workflow gets, and where it comes from.

    The settings in force live in Redis once an administrator changed them; when Redis does not
    answer, setup falls back to OFFER_TIMEOUT_S (or its default) and says so.
    """
    client = connect_redis(config.redis_url)
    try:
        settings = Store(client).settings(config.settings)
    except redis.RedisError as exc:
        return (config.settings.offer_timeout_s,
                f"OFFER_TIMEOUT_S or its default: Redis at {redact_url(config.redis_url)} did not answer "
                f"({exc.__class__.__name__}), so an administrator's change, if any, is not known")
    finally:
        client.close()
    return settings.offer_timeout_s, "the transfer settings in force (read from Redis)"


def explain_twilio_error(error: TwilioError, config: Config) -> str:
    """A Twilio failure in an operator's words: which variable to look at."""
    if error.status == 401:
        return "Twilio refused the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    if error.status == 404 and error.endpoint.startswith("workspaces."):
        return f"TWILIO_WORKSPACE_SID {config.twilio_workspace_sid} is not a TaskRouter workspace of this account"
    if error.status == 404 and error.endpoint.startswith("workflows."):
        return (f"TRANSFER_WORKFLOW_SID {config.transfer_workflow_sid} is not a workflow of workspace "
                f"{config.twilio_workspace_sid}: create one (any configuration) and set the variable to its sid")
    if error.status is None:
        return f"Twilio did not answer ({error}): check the network"
    return str(error)


def run_setup(config: Config, dry_run: bool = False, force: bool = False, out: TextIO = sys.stdout,
              events: str = "auto") -> int:
    """``baton setup``: print the plan and apply it; 0 when done, 1 on an error, 2 when refused (no ``--force``)."""
    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    gateway = TwilioGateway.from_config(config)
    timeout_s, timeout_source = offer_timeout(config)
    try:
        state = read_state(gateway, config.transfer_workflow_sid,
                           None if events == "callback" else config.public_base_url)
        plan = plan_setup(state, config, timeout_s, events)
    except TwilioError as exc:
        say(f"error: {explain_twilio_error(exc, config)}")
        return EXIT_ERROR
    except SetupError as exc:
        say(f"error: {exc}")
        return EXIT_ERROR

    say(f"Baton setup of workspace {state.workspace_sid} ({state.workspace_name}) for {config.public_base_url}"
        + (" (dry run: nothing will be changed)" if dry_run else ""))
    notes = [f"note: {note}" for note in (*plan.notes, f"offer timeout: {timeout_s} s, from {timeout_source}")]
    refused = bool(plan.refusals) and not force
    if dry_run or refused:
        for line in notes + [line for setting in plan.settings for line in setting.lines("would change")]:
            say(line)
        for refusal in plan.refusals:
            say(f"{'refused' if refused else 'would replace (--force)'}: {refusal}")
        if refused:
            say("nothing was changed: run `baton setup --force` to replace it"
                + (", or `baton setup --events streams` to leave the callback alone"
                   if any("EventCallbackUrl" in refusal for refusal in plan.refusals) else ""))
            return EXIT_REFUSED
        say("dry run: nothing was changed" if plan.writes else "dry run: everything is already set up")
        return EXIT_OK

    try:
        created = apply_plan(plan, gateway, sink_test_waiter(config))
    except ApplyError as exc:
        cause = explain_twilio_error(exc.cause, config) if isinstance(exc.cause, TwilioError) else str(exc.cause)
        say(f"error: {exc.write.describe()} failed: {cause}")
        done = "; ".join(write.describe() for write in exc.done)
        say(f"done before it: {done}" if done else "nothing was changed")
        return EXIT_ERROR
    # Printed once applied, so what setup created shows with its sid.
    for line in notes + [f"replaced (--force): {refusal}" for refusal in plan.refusals]:
        say(_fill_in(line, created))
    for setting in plan.settings:
        for line in setting.lines():
            say(_fill_in(line, created))
    changes = sum(setting.changed for setting in plan.settings)
    say(f"done: {changes} change{'s' if changes != 1 else ''}" if changes else "done: everything was already set up")
    return EXIT_OK


# Helpers


def same_endpoint(current: str, ours: str) -> bool:
    """Whether ``current`` is ``ours``, up to a URL fragment (Twilio's connection overrides live there)."""
    return bool(current) and urldefrag(current).url == ours


def redact_url(url: str) -> str:
    """``url`` for printing: user info and query values (where credentials hide in webhook URLs) masked."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = urlencode([(name, "***") for name, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def event_set(events_filter: str | None) -> set[str]:
    """The event types of a comma-separated EventsFilter (empty: TaskRouter sends every event)."""
    return {name.strip() for name in (events_filter or "").split(",") if name.strip()}


def json_or_none(text: str) -> Any:
    """The JSON value ``text`` holds, or None when it is not JSON (a workflow configuration as stored)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _fill_in(line: str, created: Mapping[str, str]) -> str:
    for placeholder, sid in created.items():
        line = line.replace(placeholder, sid)
    return line


def _queue_label(sid: Any, names: Mapping[str, str]) -> str:
    return f"{names[sid]} {sid}" if sid in names else f"{sid} (not a queue of this workspace)"


def _summary(configuration: Any, names: Mapping[str, str]) -> str:
    """One line for a workflow configuration: how many filters, and where the default goes."""
    routing = configuration.get("task_routing") if isinstance(configuration, dict) else None
    if not isinstance(routing, dict):
        return "(not a TaskRouter configuration)"
    filters = routing.get("filters") or []
    default = routing.get("default_filter")
    queue = default.get("queue") if isinstance(default, dict) else None
    count = f"{len(filters)} filter{'s' if len(filters) != 1 else ''}"
    return f"{count}, default to {_queue_label(queue, names)}" if queue else f"{count}, no default filter"


def _describe_routing(configuration: Any, names: Mapping[str, str]) -> list[str]:
    """A line per filter and one for the default filter, to show what a change adds and removes."""
    routing = configuration.get("task_routing") if isinstance(configuration, dict) else None
    if not isinstance(routing, dict):
        return []
    lines = []
    for number, raw in enumerate(routing.get("filters") or [], start=1):
        if not isinstance(raw, dict):
            lines.append(f"filter {number}: {json.dumps(raw)}")
            continue
        name = raw.get("filter_friendly_name") or raw.get("friendly_name") or f"filter {number}"
        targets = "; ".join(_describe_target(t, names) for t in raw.get("targets") or [])
        lines.append(f'filter "{name}": {raw.get("expression")} → {targets}')
    default = routing.get("default_filter")
    if isinstance(default, dict):
        lines.append(f"default filter → {_queue_label(default.get('queue'), names)}")
    return lines


def _describe_target(target: Any, names: Mapping[str, str]) -> str:
    if not isinstance(target, dict):
        return json.dumps(target)
    parts = [_queue_label(target.get("queue"), names)]
    parts += [f"{key} {target[key]}" for key in sorted(target) if key != "queue"]
    return ", ".join(parts)
