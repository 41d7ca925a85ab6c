"""``baton doctor``: is this deployment wired up? Each check says ok, or what is wrong and how to fix it.

The checks follow the path of a transfer: the credentials work, every configured sid exists, the
transfer workflow is what ``baton setup`` writes and, whoever wrote it, cannot cancel a transfer,
TaskRouter and Conversations send their events here, Redis answers, a worker answers a ping, and
beat sweeps the deadlines. TaskRouter's events come by the workspace's callback or, when Baton has an
Event Streams sink, by that sink: then the sink is checked (active, this deployment's credentials),
its subscription (Baton's events), and a test event sent through it must reach the web process. A
check whose prerequisite failed is skipped (the failure it needs already names the fault). A warning
names something Baton copes with that an operator may not want. The exit status is non-zero on any
failure, never on a warning.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import redis

from baton.domain.twilio_events import CONVERSATION_EVENTS, TRANSFER_EVENTS
from baton.infrastructure import eventstreams
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store, connect_redis
from baton.infrastructure.twilio_gateway import TwilioError, TwilioGateway
from baton.operator import setup
from workers.celery_app import DEADLINE_SWEEP_S, create_celery

# A worker's consumer answers a ping at once, even while every pool process is busy.
PING_TIMEOUT_S = 2.0
# Beat sweeps the deadlines every DEADLINE_SWEEP_S; silent three times as long, it is not running.
BEAT_SILENT_AFTER_S = 3 * DEADLINE_SWEEP_S
RUN_SETUP = "run `baton setup`"
RUN_SETUP_FORCE = "run `baton setup --force` (it replaces what is there)"
RUN_SETUP_STREAMS = "run `baton setup --events streams`"
# How long doctor waits for a sink's test event to reach the web process.
DELIVERY_WAIT_S = 5.0

CREDENTIALS = "Twilio accepts the credentials"
WORKFLOW_MATCHES = "the transfer workflow is what `baton setup` writes"
WORKFLOW_SHAPE = "the transfer workflow cannot cancel a transfer"
QUEUES_READ = "the workspace's task queues can be read"
QUEUE_OFFERS = "task queues offer a task to one agent at a time"
CALLBACK = "the workspace's EventCallbackUrl points at this deployment"
EVENTS = "the workspace's EventsFilter includes Baton's events"
STREAMS_READ = "Event Streams can be read"
CALLBACK_LEFT = "the workspace's EventCallbackUrl is left to its application: events come by Event Streams"
SINK = "Baton's Event Streams sink is active, with this deployment's URL and credentials"
SUBSCRIPTION = "the Event Streams subscription has Baton's events"
SINK_DELIVERS = "a test event sent through the Event Streams sink reaches Baton"
WEBHOOK = "the Conversations post-event webhook points at this deployment"
WEBHOOK_EVENTS = "the Conversations webhook filters include Baton's events"
SERVICE_WEBHOOK = "the Flex conversation service's own webhook, if it has one, is Baton's"
WORKER = "a worker answers a ping"
BEAT = "beat sweeps the transfers' deadlines"


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    problem: what is wrong (None: ok); fix: how to put it right.
    needs: the failed check this one could not run without (it is then skipped, neither ok nor failed).
    warning: the problem is one Baton copes with: reported, not a failure.
    """

    name: str
    problem: str | None = None
    fix: str | None = None
    needs: str | None = None
    warning: bool = False

    @property
    def failed(self) -> bool:
        return self.problem is not None and not self.warning

    def line(self) -> str:
        if self.problem is not None:
            return f"{'WARN' if self.warning else 'FAIL'} {self.name}: {self.problem} — fix: {self.fix}"
        if self.needs is not None:
            return f"skip {self.name}: needs {self.needs}"
        return f"ok   {self.name}"


def run_checks(config: Config, ping_timeout_s: float = PING_TIMEOUT_S,
               delivery_timeout_s: float = DELIVERY_WAIT_S) -> list[Check]:
    """Every check, in order; none raises."""
    return [*twilio_checks(config, TwilioGateway.from_config(config), delivery_timeout_s),
            *runtime_checks(config, ping_timeout_s)]


def twilio_checks(config: Config, gateway: TwilioGateway, delivery_timeout_s: float = DELIVERY_WAIT_S) -> list[Check]:
    """The credentials, the configured sids, the workflow, the workspace's callback and the Conversations webhook."""
    workspace_exists = f"workspace TWILIO_WORKSPACE_SID {config.twilio_workspace_sid} exists"
    after_workspace = [_workflow_exists(config), *([_fallback_exists(config)] if config.fallback_queue_sid else []),
                       WORKFLOW_MATCHES, WORKFLOW_SHAPE, QUEUE_OFFERS, CALLBACK, EVENTS]
    try:
        workspace = gateway.fetch_workspace()
    except TwilioError as exc:
        if exc.status == 401:
            return [Check(CREDENTIALS, "Twilio refused them (401)",
                          "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to the account's values (Twilio Console, "
                          "Account info)"),
                    *(Check(name, needs=CREDENTIALS) for name in [workspace_exists, *after_workspace, WEBHOOK,
                                                                   WEBHOOK_EVENTS, SERVICE_WEBHOOK])]
        if exc.status != 404:
            return [Check(CREDENTIALS, f"Twilio did not answer as expected: {exc}",
                          "check the network (and TWILIO_API_BASE, if set), then run `baton doctor` again")]
        # Twilio authenticates before it looks a resource up: a 404 means the credentials are good.
        checks = [Check(CREDENTIALS),
                  Check(workspace_exists, "Twilio has no such workspace in this account (404)",
                        "set TWILIO_WORKSPACE_SID to the Flex workspace's sid (Console: TaskRouter, Workspaces)"),
                  *(Check(name, needs=workspace_exists) for name in after_workspace)]
    else:
        checks = [Check(CREDENTIALS), Check(workspace_exists),
                  *workspace_checks(config, gateway, workspace, delivery_timeout_s)]
    return checks + webhook_checks(config, gateway) + [service_webhook_check(config, gateway)]


def workspace_checks(config: Config, gateway: TwilioGateway, workspace: dict[str, Any],
                     delivery_timeout_s: float = DELIVERY_WAIT_S) -> list[Check]:
    """The workflow and fallback queue exist, the workflow is setup's and safe, the queues' offers, and the
    workspace's events come here."""
    checks: list[Check] = []
    workflow_exists = _workflow_exists(config)
    try:
        workflow = setup.read_workflow(gateway, config.transfer_workflow_sid)
        checks.append(Check(workflow_exists))
    except TwilioError as exc:
        workflow = None
        checks.append(_lookup_failure(workflow_exists, exc, "set TRANSFER_WORKFLOW_SID to the sid of Baton's "
                                      "transfer workflow (create an empty one in TaskRouter, Workflows), then "
                                      + RUN_SETUP))
    try:
        queue_records = gateway.list_task_queues()
        queues = tuple(setup.Queue(q["sid"], q["friendly_name"], q["target_workers"] or "") for q in queue_records)
    except TwilioError as exc:
        queue_records = queues = None
        checks.append(Check(QUEUES_READ, str(exc), "run `baton doctor` again"))
    fallback_ok = True
    if config.fallback_queue_sid and queues is not None:
        fallback_ok = any(queue.sid == config.fallback_queue_sid for queue in queues)
        checks.append(Check(_fallback_exists(config)) if fallback_ok else Check(
            _fallback_exists(config), "it is not a task queue of the workspace",
            "set FALLBACK_QUEUE_SID to one of the workspace's queues, or unset it"))
    if workflow is None:
        checks.append(Check(WORKFLOW_MATCHES, needs=workflow_exists))
    elif not fallback_ok:
        checks.append(Check(WORKFLOW_MATCHES, needs=_fallback_exists(config)))
    elif queues is not None:
        checks.append(workflow_check(config, queues, workflow))
    checks.append(Check(WORKFLOW_SHAPE, needs=workflow_exists) if workflow is None else workflow_shape_check(workflow))
    checks.append(Check(QUEUE_OFFERS, needs=QUEUES_READ) if queue_records is None
                  else queue_offers_check(queue_records))

    return checks + events_checks(config, gateway, workspace, delivery_timeout_s)


def events_checks(config: Config, gateway: TwilioGateway, workspace: dict[str, Any],
                  delivery_timeout_s: float = DELIVERY_WAIT_S) -> list[Check]:
    """TaskRouter's events come here: by the workspace's callback, or by Baton's Event Streams sink when it has one."""
    ours = config.public_base_url + setup.TASKROUTER_PATH
    current = workspace["event_callback_url"] or ""
    callback_is_ours = setup.same_endpoint(current, ours)
    checks: list[Check] = []
    try:
        streams = setup.read_streams(gateway, config.public_base_url)
    except TwilioError as exc:
        streams = None
        checks.append(Check(STREAMS_READ, f"the sinks could not be read ({exc}), so an Event Streams sink of Baton's "
                                          "is not known", "run `baton doctor` again", warning=True))
    if streams is not None and streams.sinks:
        if not callback_is_ours:
            return [*checks, Check(CALLBACK_LEFT), *streams_checks(config, gateway, streams, delivery_timeout_s)]
        checks += callback_checks(config, workspace)
        return checks + streams_checks(config, gateway, streams, delivery_timeout_s)
    return checks + callback_checks(config, workspace)


def callback_checks(config: Config, workspace: dict[str, Any]) -> list[Check]:
    """The workspace's EventCallbackUrl is Baton's, and its EventsFilter lets Baton's events through."""
    ours = config.public_base_url + setup.TASKROUTER_PATH
    current = workspace["event_callback_url"] or ""
    checks = []
    if setup.same_endpoint(current, ours):
        checks.append(Check(CALLBACK))
    elif current:
        checks.append(Check(CALLBACK, f"it is {setup.redact_url(current)}, not {ours}",
                            "run `baton setup` (it adds an Event Streams sink and leaves the callback to that "
                            "application), or `baton setup --events callback --force` to replace it"))
    else:
        checks.append(Check(CALLBACK, "it is not set", RUN_SETUP))
    chosen = setup.event_set(workspace["events_filter"])
    missing = sorted(TRANSFER_EVENTS - chosen) if chosen else []  # an empty filter lets every event through
    checks.append(Check(EVENTS, f"it leaves out {', '.join(missing)}", RUN_SETUP) if missing else Check(EVENTS))
    return checks


def streams_checks(config: Config, gateway: TwilioGateway, streams: setup.EventStreamsState,
                   delivery_timeout_s: float = DELIVERY_WAIT_S) -> list[Check]:
    """Baton's sink is active with this deployment's credentials, its subscription has Baton's events, and a test
    event sent through it reaches the web process (then validated with its id, as Twilio's API offers)."""
    destination = eventstreams.sink_destination(config)
    sink = next((s for s in streams.sinks if s.destination == destination), streams.sinks[0])
    problems = []
    if sink.destination != destination:
        problems.append("its URL carries other credentials than this deployment's (TWILIO_AUTH_TOKEN or "
                        "PUBLIC_BASE_URL changed since setup): Baton refuses its deliveries")
    if sink.method.upper() != setup.SINK_METHOD:
        problems.append(f"its method is {sink.method or '(none)'}, not {setup.SINK_METHOD}")
    if sink.status != "active":
        problems.append(f"its status is {sink.status or '(none)'}, not active: Twilio delivers nothing to it")
    checks = [Check(SINK, f"sink {sink.sid}: " + "; ".join(problems), RUN_SETUP_STREAMS) if problems
              else Check(f"{SINK} ({sink.sid})")]
    subscriptions = [s for s in streams.subscriptions if s.sink_sid == sink.sid]
    subscribed = {t for s in subscriptions for t in s.types}
    missing = [t for t in eventstreams.SUBSCRIBED_TYPES if t not in subscribed]
    extra = sorted(subscribed - set(eventstreams.SUBSCRIBED_TYPES))
    if not subscriptions:
        checks.append(Check(SUBSCRIPTION, f"sink {sink.sid} has no subscription: no event is sent to it",
                            RUN_SETUP_STREAMS))
    elif missing:
        checks.append(Check(SUBSCRIPTION, f"it leaves out {', '.join(missing)}", RUN_SETUP_STREAMS))
    elif extra or len(subscriptions) > 1:
        checks.append(Check(SUBSCRIPTION, f"sink {sink.sid} also gets {', '.join(extra) or 'every event twice'} "
                                          "(delivered, then ignored or deduplicated)", RUN_SETUP_STREAMS,
                            warning=True))
    else:
        checks.append(Check(SUBSCRIPTION))
    if problems:
        checks.append(Check(SINK_DELIVERS, needs=SINK))
    else:
        checks.append(delivery_check(config, gateway, sink.sid, delivery_timeout_s))
    return checks


def delivery_check(config: Config, gateway: TwilioGateway, sink_sid: str, timeout_s: float) -> Check:
    """Twilio sends the sink a test event (``POST /Sinks/{DG}/Test``); the web process records it in Redis; doctor
    reads its id there and validates the sink with it (``POST /Sinks/{DG}/Validate``)."""
    fix = ("check that the web process runs at PUBLIC_BASE_URL and shares this REDIS_URL; Twilio's Console "
           "(Monitor, Errors) shows why the sink's deliveries fail")
    client = connect_redis(config.redis_url)
    try:
        known = eventstreams.last_sink_test(Store(client))
        since = time.time()
        gateway.test_sink(sink_sid)
        test_id = eventstreams.wait_for_sink_test(Store(client), since, timeout_s, known=known[0] if known else None)
    except TwilioError as exc:
        return Check(SINK_DELIVERS, f"Twilio refused to send a test event ({exc})", "run `baton doctor` again")
    except redis.RedisError as exc:
        return Check(SINK_DELIVERS, f"Redis did not answer ({exc.__class__.__name__}), so a test event received "
                                    "is not known", "start Redis, then run `baton doctor` again")
    finally:
        client.close()
    if test_id is None:
        return Check(SINK_DELIVERS, f"the test event Twilio sent sink {sink_sid} did not reach Baton within "
                                    f"{timeout_s:g} s", fix)
    try:
        result = setup.validate_sink(gateway, sink_sid, test_id)
    except TwilioError as exc:
        return Check(SINK_DELIVERS, f"the test event arrived, but Twilio refused the validation ({exc})", fix)
    if result not in (None, "valid"):
        return Check(SINK_DELIVERS, f"the test event arrived, but Twilio's validation says {result!r}", fix)
    return Check(SINK_DELIVERS)


def workflow_check(config: Config, queues: tuple[setup.Queue, ...], workflow: setup.Workflow) -> Check:
    """The workflow (and the everyone queue it needs) are exactly what ``baton setup`` would leave."""
    timeout_s, _ = setup.offer_timeout(config)
    plan = setup.plan_workflow(queues, workflow, config.fallback_queue_sid, timeout_s)
    problems = [f"{s.name} is {s.old}, setup writes {s.new}" for s in plan.settings if s.changed]
    return Check(WORKFLOW_MATCHES, "; ".join(problems), RUN_SETUP) if problems else Check(WORKFLOW_MATCHES)


def workflow_shape_check(workflow: setup.Workflow) -> Check:
    """The stored workflow, whoever wrote it, cannot cancel a transfer task: no filter ends in a step with a
    timeout (TaskRouter cancels a task that times out of its filter's last step), and a default filter takes
    the tasks that match no filter."""
    configuration = setup.json_or_none(workflow.configuration)
    routing = configuration.get("task_routing") if isinstance(configuration, dict) else None
    if not isinstance(routing, dict):
        return Check(WORKFLOW_SHAPE, "its configuration is not a TaskRouter configuration (no task_routing)", RUN_SETUP)
    problems = []
    for number, raw in enumerate(routing.get("filters") or [], start=1):
        targets = raw.get("targets") if isinstance(raw, dict) else None
        last = targets[-1] if isinstance(targets, list) and targets else None
        if isinstance(last, dict) and last.get("timeout") is not None:
            name = raw.get("filter_friendly_name") or f"number {number}"
            problems.append(f'the last step of filter "{name}" has a timeout ({last["timeout"]} s): TaskRouter '
                            "cancels a task that times out of its filter's last step")
    if not isinstance(routing.get("default_filter"), dict):
        problems.append("it has no default filter: a transfer task that matches no filter has no queue to wait in")
    fix = ("end every filter with a step without a timeout and keep a default filter (or run `baton setup`, whose "
           "workflow has both)")
    return Check(WORKFLOW_SHAPE, "; ".join(problems), fix) if problems else Check(WORKFLOW_SHAPE)


def queue_offers_check(queue_records: list[dict[str, Any]]) -> Check:
    """A warning for queues that offer a task to several agents at once (``MaxReservedWorkers`` above 1)."""
    several = [q for q in queue_records if (q["max_reserved_workers"] or 1) > 1]
    if not several:
        return Check(QUEUE_OFFERS)
    named = ", ".join(f"{q['friendly_name']} {q['sid']} ({q['max_reserved_workers']})" for q in several)
    return Check(QUEUE_OFFERS, f"MaxReservedWorkers is above 1 in {named}: several agents are offered the same "
                               "transfer at once; Baton handles that (the first to accept gets it, TaskRouter "
                               "rescinds the other offers)",
                 "nothing, if agents may race for a transfer; otherwise set MaxReservedWorkers to 1 on these queues",
                 warning=True)


def webhook_checks(config: Config, gateway: TwilioGateway) -> list[Check]:
    """The account's Conversations post-event webhook comes here with the events Baton acts on."""
    try:
        webhook = setup.read_webhook(gateway)
    except TwilioError as exc:
        return [Check(WEBHOOK, f"the webhook configuration could not be read: {exc}", "run `baton doctor` again"),
                Check(WEBHOOK_EVENTS, needs=WEBHOOK)]
    ours = config.public_base_url + setup.CONVERSATIONS_PATH
    current = webhook.post_webhook_url or ""
    problems = []
    if not setup.same_endpoint(current, ours):
        problems.append(f"its URL is {setup.redact_url(current)}, not {ours}" if current else "its URL is not set")
    if webhook.target not in (None, setup.WEBHOOK_TARGET):
        problems.append(f"its target is {webhook.target!r}, not {setup.WEBHOOK_TARGET!r}")
    if (webhook.method or "").upper() != setup.WEBHOOK_METHOD:
        problems.append(f"its method is {webhook.method}, not {setup.WEBHOOK_METHOD}")
    foreign = (bool(current) and not setup.same_endpoint(current, ours)) or webhook.target not in (
        None, setup.WEBHOOK_TARGET)
    checks = [Check(WEBHOOK, "; ".join(problems), RUN_SETUP_FORCE if foreign else RUN_SETUP) if problems
              else Check(WEBHOOK)]
    missing = [event for event in CONVERSATION_EVENTS if event not in webhook.filters]
    checks.append(Check(WEBHOOK_EVENTS, f"they leave out {', '.join(missing)}", RUN_SETUP) if missing
                  else Check(WEBHOOK_EVENTS))
    return checks


def service_webhook_check(config: Config, gateway: TwilioGateway) -> Check:
    """The Flex conversation service's own post-event webhook, when it has one, is Baton's with Baton's events:
    Twilio calls it for the Flex conversations instead of the global one (or besides it)."""
    try:
        service = setup.read_service_webhook(gateway)
    except TwilioError as exc:
        return Check(SERVICE_WEBHOOK, f"the service's webhook configuration could not be read: {exc}",
                     "run `baton doctor` again")
    current = service.post_webhook_url if service is not None else None
    if not current:
        return Check(SERVICE_WEBHOOK)
    ours = config.public_base_url + setup.CONVERSATIONS_PATH
    if not setup.same_endpoint(current, ours):
        return Check(SERVICE_WEBHOOK, f"Conversations service {service.service_sid} has its own post-event URL "
                                      f"{setup.redact_url(current)}, which Twilio calls for its conversations instead "
                                      "of the global webhook: Baton would not hear of a conversation closing or a "
                                      "customer leaving", RUN_SETUP_FORCE)
    problems = []
    missing = [event for event in CONVERSATION_EVENTS if event not in service.filters]
    if missing:
        problems.append(f"its filters leave out {', '.join(missing)}")
    if (service.method or "").upper() != setup.WEBHOOK_METHOD:
        problems.append(f"its method is {service.method}, not {setup.WEBHOOK_METHOD}")
    return Check(SERVICE_WEBHOOK, "; ".join(problems), RUN_SETUP) if problems else Check(SERVICE_WEBHOOK)


def runtime_checks(config: Config, ping_timeout_s: float = PING_TIMEOUT_S) -> list[Check]:
    """Redis answers, a worker answers a ping through the broker, and beat's sweep runs."""
    redis_answers = f"Redis answers at {setup.redact_url(config.redis_url)}"
    client = connect_redis(config.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        # The ping below would retry a dead broker for seconds: skip it, the Redis failure says it all.
        return [Check(redis_answers, f"{exc.__class__.__name__}: {exc}",
                      "start Redis, or set REDIS_URL (on Heroku, the Redis add-on's REDIS_TLS_URL) to a server "
                      "that answers"),
                Check(WORKER, needs=redis_answers), Check(BEAT, needs=redis_answers)]
    finally:
        client.close()
    worker = worker_check(config, ping_timeout_s)
    beat = Check(BEAT, needs=WORKER) if worker.failed else beat_check(Store.from_config(config), time.time())
    return [Check(redis_answers), worker, beat]


def beat_check(store: Store, now: float) -> Check:
    """Beat's sweep of the deadlines (every DEADLINE_SWEEP_S, run by a worker) ran lately."""
    fix = ("start exactly one beat process (the Procfile's `beat`; on Heroku `heroku ps:scale beat=1`) with the same "
           "REDIS_URL: without it no transfer times out and none is reconciled")
    try:
        swept = store.last_deadline_sweep()
    except redis.RedisError as exc:
        return Check(BEAT, f"the last sweep could not be read ({exc.__class__.__name__}: {exc})",
                     "run `baton doctor` again")
    if swept is None:
        return Check(BEAT, f"the deadlines have never been swept on this Redis (beat sweeps them every "
                           f"{DEADLINE_SWEEP_S:g} s: just started, it needs that long)", fix)
    if now - swept > BEAT_SILENT_AFTER_S:
        return Check(BEAT, f"the deadlines were last swept {now - swept:.0f} s ago", fix)
    return Check(f"{BEAT} (last {max(0.0, now - swept):.0f} s ago)")


def worker_check(config: Config, timeout_s: float = PING_TIMEOUT_S) -> Check:
    """At least one Celery worker on this deployment's broker answers a ping (remote control, on by default)."""
    celery = create_celery(config)
    try:
        # A broadcast on the broker's control exchange; limit=1 returns with the first answer.
        replies = celery.control.ping(timeout=timeout_s, limit=1)
    except Exception as exc:  # kombu's and redis-py's errors alike: the check reports, never raises
        return Check(WORKER, f"the ping could not be sent ({exc.__class__.__name__}: {exc})",
                     "check REDIS_URL, then run `baton doctor` again")
    finally:
        celery.close()
    if not replies:
        return Check(WORKER, f"no worker answered within {timeout_s:g} s on this deployment's broker",
                     "start the worker process (the Procfile's `worker`; on Heroku `heroku ps:scale worker=1`) with "
                     "the same REDIS_URL")
    return Check(f"{WORKER} ({', '.join(sorted(name for reply in replies for name in reply))})")


def run_doctor(config: Config, out: TextIO = sys.stdout, delivery_timeout_s: float = DELIVERY_WAIT_S) -> int:
    """``baton doctor``: print every check; 0 when none fails (warnings aside), 1 when any fails."""
    checks = run_checks(config, delivery_timeout_s=delivery_timeout_s)
    for check in checks:
        print(check.line(), file=out, flush=True)
    failures = sum(check.failed for check in checks)
    warnings = sum(check.warning for check in checks)
    verdict = f"{failures} check{'s' if failures != 1 else ''} failed" if failures else "all checks passed"
    print(verdict + (f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""), file=out, flush=True)
    return 1 if failures else 0


def _workflow_exists(config: Config) -> str:
    return f"transfer workflow TRANSFER_WORKFLOW_SID {config.transfer_workflow_sid} exists"


def _fallback_exists(config: Config) -> str:
    return f"fallback queue FALLBACK_QUEUE_SID {config.fallback_queue_sid} exists"


def _lookup_failure(name: str, exc: TwilioError, fix: str) -> Check:
    if exc.status == 404:
        return Check(name, "Twilio has no such resource in this workspace (404)", fix)
    return Check(name, f"it could not be read: {exc}", "run `baton doctor` again")
