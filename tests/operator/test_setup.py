"""``baton setup``: the pure plan on hand-made account states, then the command against the simulator."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from baton import setup
from baton.config import Config
from baton.settings import Settings
from baton.setup import (
    EVENTS_FILTER,
    NEW_EVERYONE_QUEUE,
    AccountState,
    ApplyError,
    ConversationsWebhook,
    CreateQueue,
    Queue,
    ServiceWebhook,
    SetupError,
    UpdateConversationsWebhook,
    UpdateServiceWebhook,
    UpdateWorkflow,
    UpdateWorkspace,
    Workflow,
    apply_plan,
    plan_setup,
    run_setup,
)
from baton.twilio_gateway import PermanentTwilioError, TwilioGateway
from baton.workflow import transfer_workflow_configuration
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
    assert plan.writes[0].configuration() == transfer_workflow_configuration(
        EVERYONE, [EVERYONE, SUPPORT, BILLING], EVERYONE, 30)


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
    plan = plan_setup(account(callback="https://user:secret@other.example.com/events?key=k3y"), deployment(), 30)

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
    """Another application's callback URL stops setup (status 2, the URL named) before any write."""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url="https://other.example.com/events")
    before = writes(sim)

    status, output = setup_run(config)

    assert status == 2
    assert writes(sim) == before
    assert ("refused: the workspace's EventCallbackUrl https://other.example.com/events is another application's"
            in output)
    assert sim.taskrouter.workspace(scenario.workspace_sid).event_callback_url == "https://other.example.com/events"


def test_force_replaces_a_foreign_callback(sim, scenario, config):
    """With --force the foreign callback URL is replaced by Baton's, and the output says what it was."""
    sim.taskrouter.update_workspace(scenario.workspace_sid, event_callback_url="https://other.example.com/events")

    status, output = setup_run(config, force=True)

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
