"""``baton setup``: the pure plan on hand-made account states, then the command against the simulator."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from baton.domain.settings import Settings
from baton.domain.workflow import transfer_workflow_configuration
from baton.infrastructure import eventstreams
from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TwilioGateway
from baton.operator import setup
from baton.operator.setup import (
    EVENTS_FILTER,
    NEW_EVERYONE_QUEUE,
    NEW_SINK,
    AccountState,
    ActivateSink,
    AddSubscribedEvent,
    ApplyError,
    ConversationsWebhook,
    CreateQueue,
    CreateSink,
    CreateSubscription,
    DeleteSink,
    DeleteSubscription,
    EventStreamsState,
    Queue,
    RemoveSubscribedEvent,
    ServiceWebhook,
    SetupError,
    StreamSink,
    StreamSubscription,
    UpdateConversationsWebhook,
    UpdateServiceWebhook,
    UpdateWorkflow,
    UpdateWorkspace,
    Workflow,
    apply_plan,
    plan_setup,
    run_setup,
)
from simulator import Simulator
from simulator.profiles import READINGS
from simulator.scenario import build_default_scenario

BASE = "https://baton.example.com"
WS, WW = "WS" + "1" * 32, "WW" + "2" * 32
EVERYONE, SUPPORT, BILLING = ("WQ" + c * 32 for c in "abc")
QUEUES = (Queue(EVERYONE, "Everyone", "1 == 1"), Queue(SUPPORT, "Support", 'routing.skills HAS "support"'),
          Queue(BILLING, "Billing", 'routing.skills HAS "billing"'))
NO_WEBHOOK = ConversationsWebhook(None, None, (), "POST", "webhook")
FLEX_SERVICE = "IS" + "d" * 32
NO_SERVICE_WEBHOOK = ServiceWebhook(FLEX_SERVICE, None, None, (), "POST")


def account(queues=QUEUES, configuration='{"task_routing": {"filters": []}}', timeout=120, callback=None,
            events_filter=None, webhook=NO_WEBHOOK, service_webhook=NO_SERVICE_WEBHOOK) -> AccountState:
    return AccountState(WS, "Flex", callback, events_filter, tuple(queues),
                        Workflow(WW, "Transfers", configuration, timeout), webhook, service_webhook)


def deployment(**changes) -> Config:
    return Config(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="token", twilio_workspace_sid=WS,
                  transfer_workflow_sid=WW, public_base_url=BASE, **changes)


# The plan


def test_plan_for_an_account_before_setup_writes_all_three():
    """A fresh account gets the workflow over every queue, Baton's callback with its events, and the webhook."""
    plan = plan_setup(account(), deployment(), offer_timeout_s=30)

    assert plan.writes == (
        UpdateWorkflow(WW, EVERYONE, tuple(sorted((EVERYONE, SUPPORT, BILLING))), EVERYONE, 30),
        UpdateWorkspace(f"{BASE}/webhooks/taskrouter", EVENTS_FILTER),
        UpdateConversationsWebhook(f"{BASE}/webhooks/conversations",
                                   ("onConversationStateUpdated", "onParticipantRemoved"), "POST", "webhook"),
    )
    assert plan.refusals == ()
    assert EVENTS_FILTER == ("reservation.accepted,reservation.canceled,reservation.created,reservation.rejected,"
                             "reservation.rescinded,reservation.timeout,task-queue.entered,task.canceled,task.deleted,"
                             "task.system-deleted,workflow.timeout")
    excluded = "worker.sid NOT IN task.transferExcludedWorkers"
    assert plan.writes[0].configuration() == {"task_routing": {
        "filters": [
            {"filter_friendly_name": "to worker", "expression": 'transferTargetType == "worker"',
             "targets": [{"queue": EVERYONE, "expression": f"worker.sid == task.transferTargetSid AND {excluded}",
                          "timeout": 30},
                         {"queue": EVERYONE, "expression": excluded}]},
            *({"filter_friendly_name": f"to queue {queue}",
               "expression": f'transferTargetType == "queue" AND transferQueueSid == "{queue}"',
               "targets": [{"queue": queue, "expression": excluded}]} for queue in (EVERYONE, SUPPORT, BILLING)),
        ],
        "default_filter": {"queue": EVERYONE},
    }}


def test_plan_of_a_set_up_account_is_empty():
    """An account exactly as setup leaves it (JSON formatted differently) needs no write."""
    configuration = transfer_workflow_configuration(EVERYONE, [SUPPORT, EVERYONE, BILLING], SUPPORT, 45)
    state = account(configuration=json.dumps(configuration, indent=4), timeout=45,
                    callback=f"{BASE}/webhooks/taskrouter#rc=3",
                    events_filter=",".join(reversed(EVENTS_FILTER.split(","))),
                    webhook=ConversationsWebhook(f"{BASE}/webhooks/conversations", None,
                                                 ("onParticipantRemoved", "onConversationStateUpdated"), "post",
                                                 "webhook"))

    plan = plan_setup(state, deployment(fallback_queue_sid=SUPPORT), offer_timeout_s=45)

    assert plan.writes == ()
    assert not any(setting.changed for setting in plan.settings)


def test_plan_creates_the_everyone_queue_when_none_targets_every_worker():
    """Without a 1==1 queue the plan creates "Everyone" first and routes the worker filter through it."""
    plan = plan_setup(account(queues=QUEUES[1:]), deployment(), offer_timeout_s=30)

    assert plan.writes[0] == CreateQueue("Everyone", "1==1")
    workflow = plan.writes[1]
    assert (workflow.everyone_queue_sid, workflow.fallback_queue_sid) == (NEW_EVERYONE_QUEUE, NEW_EVERYONE_QUEUE)
    created = workflow.configuration({NEW_EVERYONE_QUEUE: "WQ" + "d" * 32})
    assert created == transfer_workflow_configuration("WQ" + "d" * 32, [SUPPORT, BILLING, "WQ" + "d" * 32],
                                                      "WQ" + "d" * 32, 30)
    assert any("creates" in note for note in plan.notes)


def test_plan_keeps_another_applications_pre_event_filters():
    """Pre-action events in the shared Filters stay (another pre-event webhook uses them); other post events go."""
    webhook = ConversationsWebhook(None, "https://moderation.example.com/pre", ("onMessageAdd", "onMessageAdded"),
                                   "POST", "webhook")

    (write,) = [w for w in plan_setup(account(webhook=webhook), deployment(), 30).writes
                if isinstance(w, UpdateConversationsWebhook)]

    assert write.filters == ("onConversationStateUpdated", "onMessageAdd", "onParticipantRemoved")


def test_plan_refuses_another_applications_callback_and_hides_its_credentials():
    """A foreign callback URL becomes a refusal naming it, with user info and query values masked."""
    plan = plan_setup(account(callback="https://user:secret@other.example.com/events?key=k3y"), deployment(), 30,
                      events="callback")

    (refusal,) = plan.refusals
    assert "https://***@other.example.com/events?key=***" in refusal
    assert "secret" not in "".join(line for s in plan.settings for line in s.lines()) + refusal


def test_plan_refuses_a_webhook_target_of_another_integration():
    """Global Conversations webhooks routed to another target (e.g. "flex") are not taken over without --force."""
    webhook = ConversationsWebhook(None, None, (), "POST", "flex")

    (refusal,) = plan_setup(account(webhook=webhook), deployment(), 30).refusals

    assert refusal.startswith("the Conversations webhooks' target is 'flex', not 'webhook'")


def test_plan_gives_no_webhook_to_a_service_without_one():
    """A Flex service with no post-event URL (a pre-event one aside) keeps none: the global webhook reaches Baton."""
    service = ServiceWebhook(FLEX_SERVICE, None, "https://moderation.example.com/pre", ("onMessageAdd",), "POST")

    plan = plan_setup(account(service_webhook=service), deployment(), 30)

    assert not any(isinstance(write, UpdateServiceWebhook) for write in plan.writes)
    (setting,) = [s for s in plan.settings if FLEX_SERVICE in s.name]
    assert setting.lines() == [f"unchanged: Conversations service {FLEX_SERVICE} post-event webhook URL: "
                               "(none: the global webhook applies)"]


def test_plan_refuses_another_applications_service_webhook():
    """A service post-event URL of another application is a refusal; the write puts Baton's URL and events there."""
    service = ServiceWebhook(FLEX_SERVICE, "https://bot.example.com/hook?key=k3y", "https://bot.example.com/pre",
                             ("onMessageAdd", "onMessageAdded"), "GET")

    plan = plan_setup(account(service_webhook=service), deployment(), 30)

    (refusal,) = plan.refusals
    assert refusal.startswith(f"the Conversations service {FLEX_SERVICE} post-event webhook "
                              "https://bot.example.com/hook?key=*** is another application's")
    assert plan.writes[-1] == UpdateServiceWebhook(
        FLEX_SERVICE, f"{BASE}/webhooks/conversations",
        ("onConversationStateUpdated", "onMessageAdd", "onParticipantRemoved"), "POST")


def test_plan_keeps_batons_service_webhook():
    """A service whose post-event URL is Baton's, with Baton's events and method, needs no write."""
    service = ServiceWebhook(FLEX_SERVICE, f"{BASE}/webhooks/conversations", None,
                             ("onParticipantRemoved", "onConversationStateUpdated"), "POST")

    plan = plan_setup(account(service_webhook=service), deployment(), 30)

    assert not any(isinstance(write, UpdateServiceWebhook) for write in plan.writes)
    assert plan.refusals == ()


def test_apply_stops_at_the_first_failed_write_and_names_what_was_done():
    """A write that fails stops the apply step; the error carries the writes made before it."""
    class FailingWorkspaceUpdate:
        def __init__(self):
            self.calls = []

        def update_workflow(self, *args):
            self.calls.append("update_workflow")

        def update_workspace_events(self, *args):
            raise PermanentTwilioError("workspaces.update", "Invalid EventCallbackUrl", 400, 20001)

    gateway = FailingWorkspaceUpdate()
    plan = plan_setup(account(), deployment(), 30)

    with pytest.raises(ApplyError) as failure:
        apply_plan(plan, gateway)

    assert gateway.calls == ["update_workflow"]
    assert failure.value.done == plan.writes[:1] and failure.value.write == plan.writes[1]


def test_plan_rejects_a_fallback_queue_of_another_workspace():
    """FALLBACK_QUEUE_SID must be one of the workspace's queues."""
    with pytest.raises(SetupError, match="FALLBACK_QUEUE_SID"):
        plan_setup(account(), deployment(fallback_queue_sid="WQ" + "e" * 32), 30)


# The command against the simulator


@pytest.fixture
def sim():
    with Simulator(time_scale=0.05) as simulator:
        simulator.serve()
        simulator.dispatcher.drop = lambda url, params: True  # the URLs setup writes lead nowhere here
        yield simulator


@pytest.fixture
def scenario(sim):
    """The default contact center before setup: its transfer workflow empty, no event callback, no webhook."""
    scenario = build_default_scenario(sim)
    sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid,
                                   configuration={"task_routing": {"filters": []}}, task_reservation_timeout=120)
    return scenario


@pytest.fixture
def config(sim, scenario, redis_url) -> Config:
    return Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                  twilio_workspace_sid=scenario.workspace_sid, transfer_workflow_sid=scenario.transfer_workflow_sid,
                  public_base_url=BASE, twilio_api_base=sim.url, redis_url=redis_url)


def setup_run(config: Config, **options) -> tuple[int, str]:
    out = io.StringIO()
    return run_setup(config, out=out, **options), out.getvalue()


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def stored_workflow(config: Config) -> setup.Workflow:
    return setup.read_workflow(TwilioGateway.from_config(config), config.transfer_workflow_sid)


def writes(sim) -> int:
    return len(sim.requests.find("POST"))


def test_setup_writes_workflow_callback_and_webhook(sim, scenario, config):
    """Setup writes the transfer workflow with the offer timeout, Baton's callback and events, and the webhook."""
    status, output = setup_run(config)

    assert status == 0
    queues = scenario.queues
    fetched = stored_workflow(config)
    assert json.loads(fetched.configuration) == transfer_workflow_configuration(
        queues["everyone"], queues.values(), queues["everyone"], Settings().offer_timeout_s)
    assert fetched.task_reservation_timeout == Settings().offer_timeout_s
    workspace = sim.taskrouter.workspace(scenario.workspace_sid)
    assert (workspace.event_callback_url, workspace.events_filter) == (f"{BASE}/webhooks/taskrouter", EVENTS_FILTER)
    assert sim.conversations.webhook_config == {
        "post_webhook_url": f"{BASE}/webhooks/conversations", "pre_webhook_url": None, "method": "POST",
        "filters": ["onConversationStateUpdated", "onParticipantRemoved"], "target": "webhook"}
    assert len(lines(output, "changed: ")) == 6 and "done: 6 changes" in output


def test_second_run_changes_nothing_and_writes_nothing(sim, config):
    """Run twice: the second run reports every value unchanged and sends no write request."""
    setup_run(config)
    before = writes(sim)

    status, output = setup_run(config)

    assert status == 0
    assert writes(sim) == before
    assert lines(output, "changed: ") == []
    assert len(lines(output, "unchanged: ")) == 10
    assert "done: everything was already set up" in output


def test_dry_run_shows_the_changes_and_writes_nothing(sim, scenario, config):
    """--dry-run prints what would change and sends no write request."""
    before = writes(sim)

    status, output = setup_run(config, dry_run=True)

    assert status == 0
    assert writes(sim) == before
    assert len(lines(output, "would change: ")) == 6 and lines(output, "changed: ") == []
    assert sim.taskrouter.workspace(scenario.workspace_sid).event_callback_url is None


def test_foreign_callback_is_refused_without_force(sim, scenario, config):
    """With --events callback, another application's callback URL stops setup (status 2, the URL named) before any
    write, and the refusal points to Event Streams."""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url="https://other.example.com/events")
    before = writes(sim)

    status, output = setup_run(config, events="callback")

    assert status == 2
    assert writes(sim) == before
    assert ("refused: the workspace's EventCallbackUrl https://other.example.com/events is another application's"
            in output)
    assert sim.taskrouter.workspace(scenario.workspace_sid).event_callback_url == "https://other.example.com/events"
    assert "or `baton setup --events streams` to leave the callback alone" in output


def test_force_replaces_a_foreign_callback(sim, scenario, config):
    """With --events callback --force the foreign callback URL is replaced by Baton's, and the output says what it
    was."""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url="https://other.example.com/events")

    status, output = setup_run(config, force=True, events="callback")

    assert status == 0
    assert sim.taskrouter.workspace(scenario.workspace_sid).event_callback_url == f"{BASE}/webhooks/taskrouter"
    assert "EventCallbackUrl: https://other.example.com/events → https://baton.example.com/webhooks/taskrouter" \
        in output


def test_missing_everyone_queue_is_created_once(sim, scenario, config):
    """With no 1==1 queue setup creates "Everyone", routes agent transfers through it, and a rerun keeps it."""
    sim.taskrouter.update_task_queue(scenario.workspace_sid, scenario.queues["everyone"],
                                     target_workers='routing.skills HAS "support"')

    status, output = setup_run(config)
    (created,) = [q for q in TwilioGateway.from_config(config).list_task_queues() if q["target_workers"] == "1==1"]
    status_again, output_again = setup_run(config)

    assert (status, status_again) == (0, 0)
    assert created["friendly_name"] == "Everyone" and created["sid"] in output
    assert NEW_EVERYONE_QUEUE not in output
    configuration = json.loads(stored_workflow(config).configuration)
    assert configuration["task_routing"]["filters"][0]["targets"][0]["queue"] == created["sid"]
    assert lines(output_again, "changed: ") == []


def test_default_scenario_workflow_is_what_setup_writes(sim, config):
    """The simulator's default scenario provisions exactly setup's workflow (with Support as the fallback)."""
    scenario = build_default_scenario(sim)
    config = replace(config, twilio_workspace_sid=scenario.workspace_sid,
                     transfer_workflow_sid=scenario.transfer_workflow_sid,
                     fallback_queue_sid=scenario.queues["support"])

    status, output = setup_run(config, dry_run=True)

    assert status == 0
    assert "unchanged: transfer workflow" in output and "would change: transfer workflow" not in output


def test_offer_timeout_comes_from_the_stored_settings(sim, scenario, config, store):
    """An administrator's offer timeout in Redis is the one the workflow gets, and the output says so."""
    store.save_settings(Settings(offer_timeout_s=45))

    status, output = setup_run(config)

    fetched = stored_workflow(config)
    assert status == 0
    assert fetched.task_reservation_timeout == 45
    assert "offer timeout: 45 s, from the transfer settings in force (read from Redis)" in output


def test_offer_timeout_falls_back_to_the_environment_when_redis_is_down(sim, scenario, config):
    """Without Redis setup uses OFFER_TIMEOUT_S (or its default) and says that a stored change is unknown."""
    config = replace(config, redis_url="redis://127.0.0.1:1/0", settings=Settings(offer_timeout_s=20))

    status, output = setup_run(config)

    assert status == 0
    assert stored_workflow(config).task_reservation_timeout == 20
    assert "offer timeout: 20 s, from OFFER_TIMEOUT_S or its default: Redis at redis://127.0.0.1:1/0" in output


def test_refused_credentials_are_named(sim, config):
    """A wrong auth token ends setup with status 1 and says which variables to check."""
    config = replace(config, twilio_auth_token="wrong")

    status, output = setup_run(config)

    assert status == 1
    assert "Twilio refused the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in output
    assert "wrong" not in output


# Where the Conversations events go, under each reading of service-level webhooks


def baton_hears_a_conversation_close(sim) -> bool:
    """Close a conversation (as Flex's SDK would) and say whether Baton's URL got onConversationStateUpdated."""
    conversation = sim.conversations.create_conversation()
    sim.conversations.close_conversation(conversation.sid)
    assert sim.dispatcher.wait_idle()
    return any(delivery.url == f"{BASE}/webhooks/conversations"
               and delivery.params["EventType"] == "onConversationStateUpdated"
               and delivery.params["ConversationSid"] == conversation.sid for delivery in sim.dispatcher.deliveries)


@pytest.mark.parametrize("reading", READINGS["conversations_webhooks"])
def test_setup_leaves_a_service_without_webhook_and_baton_hears_through_the_global_one(sim, config, reading):
    """With no service post-event URL, setup writes none, and Baton gets the events through the global webhook."""
    sim.profile.update(conversations_webhooks=reading)

    status, output = setup_run(config)

    assert status == 0
    assert sim.conversations.service_webhook_config["post_webhook_url"] is None
    assert "(none: the global webhook applies)" in output
    assert baton_hears_a_conversation_close(sim)


def test_foreign_service_webhook_is_refused_without_force(sim, config):
    """Another application's URL on the Flex service stops setup (status 2) and stays as it was."""
    sim.conversations.configure_service_webhooks(post_webhook_url="https://bot.example.com/hook",
                                                 filters=["onMessageAdded"])

    status, output = setup_run(config)

    assert status == 2
    assert f"refused: the Conversations service {sim.conversations.chat_service_sid} post-event webhook " \
           "https://bot.example.com/hook is another application's" in output
    assert sim.conversations.service_webhook_config["post_webhook_url"] == "https://bot.example.com/hook"


@pytest.mark.parametrize("reading", READINGS["conversations_webhooks"])
def test_force_puts_baton_on_the_service_webhook_where_events_go(sim, config, reading):
    """With --force Baton's URL replaces the service's, and Baton gets the events under either reading."""
    sim.profile.update(conversations_webhooks=reading)
    sim.conversations.configure_service_webhooks(post_webhook_url="https://bot.example.com/hook",
                                                 pre_webhook_url="https://bot.example.com/pre",
                                                 filters=["onMessageAdd", "onMessageAdded"])

    status, output = setup_run(config, force=True)
    status_again, output_again = setup_run(config)

    assert (status, status_again) == (0, 0)
    assert sim.conversations.service_webhook_config == {
        "post_webhook_url": f"{BASE}/webhooks/conversations", "pre_webhook_url": "https://bot.example.com/pre",
        "method": "POST", "filters": ["onConversationStateUpdated", "onMessageAdd", "onParticipantRemoved"]}
    assert lines(output_again, "changed: ") == []
    assert baton_hears_a_conversation_close(sim)


# TaskRouter's events through Event Streams (--events streams, or auto when the callback is another application's)

SINK = "DG" + "1" * 32
SUBSCRIPTION = "DF" + "2" * 32
TOKEN_SINK_DESTINATION = eventstreams.sink_destination(deployment())


def streams_account(callback="https://crm.example.com/events", sinks=(), subscriptions=()) -> AccountState:
    return replace(account(callback=callback), streams=EventStreamsState(tuple(sinks), tuple(subscriptions)))


def ours(sid=SINK, status="active", destination=TOKEN_SINK_DESTINATION, method="POST") -> StreamSink:
    return StreamSink(sid, status, destination, method, True)


def streams_writes(plan) -> list:
    return [w for w in plan.writes if type(w).__module__ == "baton.operator.setup"
            and type(w).__name__ in ("CreateSink", "ActivateSink", "CreateSubscription", "AddSubscribedEvent",
                                     "RemoveSubscribedEvent", "DeleteSubscription", "DeleteSink")]


def test_auto_goes_through_event_streams_when_the_callback_is_another_applications():
    """No refusal, no write to the workspace: one sink with this deployment's credentials, activated, subscribed to
    exactly Baton's events; the output shows no secret."""
    plan = plan_setup(streams_account(), deployment(), 30)

    assert plan.refusals == ()
    assert not any(isinstance(w, UpdateWorkspace) for w in plan.writes)
    assert streams_writes(plan) == [CreateSink(TOKEN_SINK_DESTINATION), ActivateSink(NEW_SINK),
                                    CreateSubscription(NEW_SINK, eventstreams.SUBSCRIBED_TYPES)]
    assert CreateSink(TOKEN_SINK_DESTINATION).configuration() == {
        "destination": TOKEN_SINK_DESTINATION, "method": "POST", "batch_events": True}
    assert any(note.startswith("events: through Event Streams (--events auto): the workspace's EventCallbackUrl "
                               "https://crm.example.com/events is another application's") for note in plan.notes)
    printed = "\n".join([*plan.notes, *(line for setting in plan.settings for line in setting.lines())])
    assert "https://***@baton.example.com/webhooks/event-streams" in printed
    assert eventstreams.userinfo(TOKEN_SINK_DESTINATION)[1] not in printed + repr(plan.writes[0].describe())


@pytest.mark.parametrize("callback", [None, f"{BASE}/webhooks/taskrouter"])
def test_auto_keeps_the_callback_when_no_other_application_uses_it(callback):
    plan = plan_setup(streams_account(callback=callback), deployment(), 30)
    assert streams_writes(plan) == []
    assert any(note.startswith("events: through the workspace's EventCallbackUrl") for note in plan.notes)


def test_auto_keeps_to_event_streams_once_baton_has_a_sink():
    """A sink of Baton's (set up before) keeps auto on Event Streams, even with the callback free."""
    subscription = StreamSubscription(SUBSCRIPTION, SINK, eventstreams.SUBSCRIBED_TYPES)
    plan = plan_setup(streams_account(callback=None, sinks=[ours()], subscriptions=[subscription]), deployment(), 30)
    assert not any(isinstance(w, UpdateWorkspace) for w in plan.writes) and streams_writes(plan) == []


def test_a_sink_and_subscription_as_setup_leaves_them_need_no_write():
    subscription = StreamSubscription(SUBSCRIPTION, SINK, tuple(reversed(eventstreams.SUBSCRIBED_TYPES)))
    plan = plan_setup(streams_account(sinks=[ours()], subscriptions=[subscription]), deployment(), 30,
                      events="streams")
    assert streams_writes(plan) == []
    assert not any(setting.changed for setting in plan.settings if "Event Streams" in setting.name)


def test_the_subscription_gets_exactly_batons_types():
    """Missing types are added before unwanted ones are removed (a subscription is never left empty)."""
    types = (*eventstreams.SUBSCRIBED_TYPES[1:], "com.twilio.taskrouter.task.created")
    plan = plan_setup(streams_account(sinks=[ours()], subscriptions=[StreamSubscription(SUBSCRIPTION, SINK, types)]),
                      deployment(), 30, events="streams")
    assert streams_writes(plan) == [AddSubscribedEvent(SUBSCRIPTION, eventstreams.SUBSCRIBED_TYPES[0]),
                                    RemoveSubscribedEvent(SUBSCRIPTION, "com.twilio.taskrouter.task.created")]


def test_an_inactive_sink_is_activated():
    subscription = StreamSubscription(SUBSCRIPTION, SINK, eventstreams.SUBSCRIBED_TYPES)
    plan = plan_setup(streams_account(sinks=[ours(status="initialized")], subscriptions=[subscription]),
                      deployment(), 30, events="streams")
    assert streams_writes(plan) == [ActivateSink(SINK)]


def test_a_sink_with_other_credentials_is_replaced_after_its_successor_is_subscribed():
    """Sinks cannot be changed: a new one with this deployment's credentials, subscribed, then the old subscription
    and sink deleted, so that no event is missed meanwhile."""
    stale = ours(destination="https://baton:old@baton.example.com/webhooks/event-streams")
    subscription = StreamSubscription(SUBSCRIPTION, SINK, eventstreams.SUBSCRIBED_TYPES)
    plan = plan_setup(streams_account(sinks=[stale], subscriptions=[subscription]), deployment(), 30,
                      events="streams")
    assert streams_writes(plan) == [CreateSink(TOKEN_SINK_DESTINATION), ActivateSink(NEW_SINK),
                                    CreateSubscription(NEW_SINK, eventstreams.SUBSCRIBED_TYPES),
                                    DeleteSubscription(SUBSCRIPTION), DeleteSink(SINK)]


def test_an_unknown_events_mode_is_refused():
    with pytest.raises(SetupError, match="--events"):
        plan_setup(account(), deployment(), 30, events="kinesis")


def baton_sinks(sim) -> list:
    return [s for s in sim.events.sinks.values() if eventstreams.without_userinfo(
        s.configuration["destination"]) == f"{BASE}/webhooks/event-streams"]


def test_setup_adds_a_sink_beside_another_applications_callback_and_a_second_run_changes_nothing(sim, scenario,
                                                                                                 config):
    """The default (auto) with a foreign callback: a sink and a subscription of Baton's events; the callback stays;
    a second run reports everything unchanged and writes nothing."""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url="https://crm.example.com/events")

    status, output = setup_run(config)
    before = writes(sim)
    status_again, output_again = setup_run(config)

    assert (status, status_again) == (0, 0), output
    workspace = sim.taskrouter.workspace(scenario.workspace_sid)
    assert workspace.event_callback_url == "https://crm.example.com/events" and workspace.events_filter is None
    (sink,) = baton_sinks(sim)
    assert sink.status == "active"
    assert sink.configuration == {"destination": eventstreams.sink_destination(config), "method": "POST",
                                  "batch_events": True}
    (subscription,) = sim.events.subscriptions.values()
    assert subscription.sink_sid == sink.sid and tuple(subscription.types) == eventstreams.SUBSCRIBED_TYPES
    assert f"changed: Event Streams sink: (none) → {sink.sid} https://***@baton.example.com/webhooks/" in output
    assert writes(sim) == before and lines(output_again, "changed: ") == []
    assert "done: everything was already set up" in output_again
    assert eventstreams.userinfo(sink.configuration["destination"])[1] not in output + output_again


def test_dry_run_with_event_streams_writes_nothing(sim, config):
    before = writes(sim)
    status, output = setup_run(config, dry_run=True, events="streams")
    assert status == 0 and writes(sim) == before and sim.events.sinks == {}
    assert "would change: Event Streams sink: (none) → (new sink) https://***@baton.example.com" in output
    assert "would change: workspace" not in output


def test_setup_replaces_a_sink_whose_credentials_are_no_longer_this_deployments(sim, scenario, config):
    """After the auth token's rotation the sink's URL carries old credentials: setup makes a new sink and
    subscription, then deletes the old ones; one sink and one subscription remain."""
    setup_run(config, events="streams")
    (old,) = baton_sinks(sim)
    old.configuration["destination"] = eventstreams.with_userinfo(f"{BASE}/webhooks/event-streams", "baton", "old")

    status, output = setup_run(config, events="streams")

    assert status == 0, output
    (new,) = baton_sinks(sim)
    assert new.sid != old.sid and new.configuration["destination"] == eventstreams.sink_destination(config)
    (subscription,) = sim.events.subscriptions.values()
    assert subscription.sink_sid == new.sid


def test_a_sink_whose_test_event_never_arrives_stops_setup_with_the_fix(sim, config, monkeypatch):
    """Where sinks must be validated, no web process to receive the test event: status 1, the sink left
    unsubscribed, and what to check."""
    sim.profile.update(sink_validation="test_and_validate")
    monkeypatch.setattr(setup, "SINK_TEST_WAIT_S", 0.3)

    status, output = setup_run(config, events="streams")

    assert status == 1
    assert "did not reach Baton within 0.3 s: check that the web process runs at PUBLIC_BASE_URL" in output
    assert "done before it: " in output and "create the Event Streams sink" in output
    assert sim.events.subscriptions == {}
