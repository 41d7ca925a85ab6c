"""``baton setup --events streams`` and ``baton doctor``'s Event Streams checks against Baton's web process.

One stack serves the module: the simulator with the default scenario, whose workspace callback another
application holds, and Baton's web process (the Procfile's), which receives the sink's test events.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from baton.infrastructure import eventstreams
from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import TwilioGateway
from baton.operator import doctor
from baton.operator.devstack import DevStack
from baton.operator.setup import run_setup
from simulator.profiles import READINGS

FOREIGN_CALLBACK = "https://crm.example.com/taskrouter-events"


@pytest.fixture(scope="module")
def stack(stack_redis):
    devstack = DevStack(stack_redis, time_scale=0.05)
    try:
        devstack.start(processes=("web",))
        sim = devstack.simulator
        sim.taskrouter.update_workspace(devstack.scenario.workspace_sid, event_callback_url=FOREIGN_CALLBACK)
        sim.dispatcher.drop = lambda url, params: url.startswith("https://crm.example.com")
        yield devstack
    finally:
        devstack.stop()


@pytest.fixture
def config(stack) -> Config:
    sim, scenario = stack.simulator, stack.scenario
    return Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                  twilio_workspace_sid=scenario.workspace_sid, transfer_workflow_sid=scenario.transfer_workflow_sid,
                  fallback_queue_sid=scenario.queues["support"], public_base_url=stack.web_url,
                  twilio_api_base=sim.url, redis_url=stack.redis_url)


@pytest.fixture
def clean(stack):
    """No sink nor subscription before and after the test; afterwards the documented profile, and the Conversations
    webhook to the web process."""
    def remove_all():
        events = stack.simulator.events
        for subscription in list(events.subscriptions):
            events.delete_subscription(subscription)
        for sink in list(events.sinks):
            events.delete_sink(sink)

    remove_all()
    yield
    remove_all()
    stack.simulator.profile.update("documented")
    stack.simulator.conversations.configure_webhooks(post_webhook_url=f"{stack.web_url}/webhooks/conversations")


def setup_output(config: Config, **options) -> tuple[int, str]:
    out = io.StringIO()
    return run_setup(config, out=out, **options), out.getvalue()


def stream_checks(config: Config) -> dict[str, str]:
    """Doctor's checks of how TaskRouter's events arrive, by name: ``ok``, ``FAIL …``, ``WARN …`` or ``skip``."""
    checks = doctor.twilio_checks(config, TwilioGateway.from_config(config), delivery_timeout_s=1)
    wanted = (doctor.CALLBACK, doctor.CALLBACK_LEFT, doctor.SINK, doctor.SUBSCRIPTION, doctor.SINK_DELIVERS)
    return {next(name for name in wanted if check.name.startswith(name)): check.line()
            for check in checks if check.name.startswith(wanted)}


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("reading", READINGS["sink_validation"])
def test_setup_then_doctor_under_each_reading_of_sink_validation(stack, config, reading):
    """Active at once, or tested and validated first (the web process records the test event, setup validates the
    sink with its id): either way the sink ends active and subscribed, and doctor's checks pass, a test event
    having gone through the sink to Baton."""
    stack.simulator.profile.update(sink_validation=reading)

    status, output = setup_output(config)

    assert status == 0, output
    (sink,) = stack.simulator.events.sinks.values()
    assert sink.status == "active"
    assert bool(sink.received_tests) == (reading == "test_and_validate")
    assert stack.simulator.taskrouter.workspace(stack.scenario.workspace_sid).event_callback_url == FOREIGN_CALLBACK
    checks = stream_checks(config)
    assert checks == {doctor.CALLBACK_LEFT: f"ok   {doctor.CALLBACK_LEFT}",
                      doctor.SINK: f"ok   {doctor.SINK} ({sink.sid})",
                      doctor.SUBSCRIPTION: f"ok   {doctor.SUBSCRIPTION}",
                      doctor.SINK_DELIVERS: f"ok   {doctor.SINK_DELIVERS}"}


@pytest.mark.usefixtures("clean")
def test_doctor_names_a_missing_type_and_stale_credentials(stack, config):
    """A type removed from the subscription fails its check; a sink with credentials other than this deployment's
    fails (Baton would refuse every delivery) and its delivery test is skipped."""
    assert setup_output(config, events="streams")[0] == 0
    (subscription,) = stack.simulator.events.subscriptions.values()
    del subscription.types["com.twilio.taskrouter.reservation.rejected"]
    (sink,) = stack.simulator.events.sinks.values()
    sink.configuration["destination"] = eventstreams.with_userinfo(
        eventstreams.sink_url(config.public_base_url), "baton", "stale")

    checks = stream_checks(config)

    assert checks[doctor.SUBSCRIPTION].startswith(f"FAIL {doctor.SUBSCRIPTION}: it leaves out "
                                                  "com.twilio.taskrouter.reservation.rejected — fix: run `baton setup "
                                                  "--events streams`")
    assert "its URL carries other credentials than this deployment's" in checks[doctor.SINK]
    assert checks[doctor.SINK_DELIVERS] == f"skip {doctor.SINK_DELIVERS}: needs {doctor.SINK}"
    assert setup_output(config)[0] == 0
    assert all(line.startswith("ok ") for line in stream_checks(config).values())


@pytest.mark.usefixtures("clean")
def test_doctor_fails_a_sink_whose_test_event_does_not_reach_baton(stack, config):
    """The sink active and subscribed, with the credentials of its URL, but nothing answering there (a
    PUBLIC_BASE_URL that is not the web process's address): the test event never arrives."""
    nowhere = replace(config, public_base_url="http://127.0.0.1:9")
    assert setup_output(nowhere, events="streams", force=True)[0] == 0
    (sink,) = stack.simulator.events.sinks.values()

    checks = stream_checks(nowhere)

    assert checks[doctor.SINK] == f"ok   {doctor.SINK} ({sink.sid})"
    assert checks[doctor.SINK_DELIVERS].startswith(f"FAIL {doctor.SINK_DELIVERS}: the test event Twilio sent sink "
                                                   f"{sink.sid} did not reach Baton within 1 s — fix: check that the "
                                                   "web process runs at PUBLIC_BASE_URL")


@pytest.mark.usefixtures("clean")
def test_with_the_callback_baton_s_too_both_paths_are_checked(stack, config):
    """Setup through Event Streams while the callback is Baton's: a note says events come both ways; doctor checks
    the callback and the sink."""
    sim = stack.simulator
    sim.taskrouter.update_workspace(stack.scenario.workspace_sid, event_callback_url=f"{stack.web_url}/webhooks/"
                                                                                    "taskrouter")
    try:
        status, output = setup_output(config, events="streams")
        checks = stream_checks(config)
    finally:
        sim.taskrouter.update_workspace(stack.scenario.workspace_sid, event_callback_url=FOREIGN_CALLBACK)

    assert status == 0
    assert "note: the workspace's EventCallbackUrl is Baton's too: each event arrives both ways and is handled once" \
        in output
    assert set(checks) == {doctor.CALLBACK, doctor.SINK, doctor.SUBSCRIPTION, doctor.SINK_DELIVERS}
    assert all(line.startswith("ok ") for line in checks.values())
