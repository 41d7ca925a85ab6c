"""``baton doctor`` against a real worker process (the Procfile's, started by the DevStack) and the simulator.

One stack serves the module: ``baton setup`` runs once on it, then each test breaks one thing
(mostly through the Config it passes, never ``os.environ``) and reads doctor's verdict.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace

import pytest

from baton.infrastructure.config import Config
from baton.infrastructure.store import Store, connect_redis
from baton.infrastructure.twilio_gateway import TwilioGateway
from baton.operator.devstack import DevStack, free_port
from baton.operator.doctor import beat_check, run_doctor
from baton.operator.setup import read_workflow, run_setup


@pytest.fixture(scope="module")
def stack(stack_redis):
    """The simulator with the default scenario, a Celery worker and beat, as the Procfile runs them."""
    devstack = DevStack(stack_redis, time_scale=0.05)
    try:
        devstack.start(processes=("worker", "beat"))
        devstack.simulator.dispatcher.drop = lambda url, params: True  # no web process here to receive events
        yield devstack
    finally:
        devstack.stop()


@pytest.fixture(scope="module")
def config(stack) -> Config:
    """This deployment's configuration, with ``baton setup`` already run on the account."""
    sim, scenario = stack.simulator, stack.scenario
    config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                    twilio_workspace_sid=scenario.workspace_sid, transfer_workflow_sid=scenario.transfer_workflow_sid,
                    fallback_queue_sid=scenario.queues["support"], public_base_url=stack.web_url,
                    twilio_api_base=sim.url, redis_url=stack.redis_url)
    assert run_setup(config, out=io.StringIO()) == 0
    wait_for_a_sweep(Store.from_config(config), since=0.0)
    return config


def wait_for_a_sweep(store: Store, since: float) -> None:
    """Wait until beat has swept the deadlines after ``since`` (its first sweep comes DEADLINE_SWEEP_S after it
    starts)."""
    deadline = time.monotonic() + 15
    while (store.last_deadline_sweep() or 0.0) <= since:
        assert time.monotonic() < deadline, "beat never swept the deadlines"
        time.sleep(0.1)


def doctor(config: Config) -> tuple[int, str]:
    """Doctor's exit status and output."""
    out = io.StringIO()
    status = run_doctor(config, out=out)
    return status, out.getvalue()


def failures(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL ")]


def test_doctor_passes_on_a_correct_set_up(config):
    """After setup, with Redis up and the worker running, every check is ok and the status is 0."""
    status, output = doctor(config)

    assert status == 0, output
    checks = output.splitlines()[:-1]
    assert len(checks) == 15 and all(line.startswith("ok   ") for line in checks), output
    assert "ok   a worker answers a ping (celery@" in output
    assert "ok   beat sweeps the transfers' deadlines (last " in output
    assert output.splitlines()[-1] == "all checks passed"


def test_wrong_workflow_sid_is_named(config):
    """A TRANSFER_WORKFLOW_SID the workspace lacks fails its check, and the workflow comparison is skipped."""
    wrong = "WW" + "f" * 32

    status, output = doctor(replace(config, transfer_workflow_sid=wrong))

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith(f"FAIL transfer workflow TRANSFER_WORKFLOW_SID {wrong} exists: Twilio has no such "
                              "resource in this workspace (404) — fix: set TRANSFER_WORKFLOW_SID")
    assert (f"skip the transfer workflow is what `baton setup` writes: needs transfer workflow TRANSFER_WORKFLOW_SID "
            f"{wrong} exists") in output


def test_wrong_workspace_sid_is_named(config):
    """A TWILIO_WORKSPACE_SID the account lacks fails; the credentials still pass (Twilio answered 404, not 401)."""
    wrong = "WS" + "f" * 32

    status, output = doctor(replace(config, twilio_workspace_sid=wrong))

    assert status == 1
    assert "ok   Twilio accepts the credentials" in output
    (failure,) = failures(output)
    assert failure.startswith(f"FAIL workspace TWILIO_WORKSPACE_SID {wrong} exists: Twilio has no such workspace")


def test_wrong_fallback_queue_sid_is_named(config):
    """A FALLBACK_QUEUE_SID that is not one of the workspace's queues fails its check."""
    wrong = "WQ" + "f" * 32

    status, output = doctor(replace(config, fallback_queue_sid=wrong))

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith(f"FAIL fallback queue FALLBACK_QUEUE_SID {wrong} exists: it is not a task queue")


def test_bad_credentials_are_named(config):
    """A wrong auth token fails the credentials check and skips everything that needs Twilio."""
    status, output = doctor(replace(config, twilio_auth_token="not-the-token"))

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith("FAIL Twilio accepts the credentials: Twilio refused them (401) — fix: set "
                              "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    assert "not-the-token" not in output


def test_wrong_callback_url_is_named(stack, config):
    """A workspace whose events go to another URL (and no Event Streams sink of Baton's) fails the callback check,
    naming that URL, with both ways out."""
    sim, workspace_sid = stack.simulator, stack.scenario.workspace_sid
    ours = sim.taskrouter.workspace(workspace_sid).event_callback_url
    sim.taskrouter.update_workspace(workspace_sid, event_callback_url="https://old-baton.example.com/webhooks/taskrouter")
    try:
        status, output = doctor(config)
    finally:
        sim.taskrouter.update_workspace(workspace_sid, event_callback_url=ours)

    assert status == 1
    (failure,) = failures(output)
    assert failure == ("FAIL the workspace's EventCallbackUrl points at this deployment: it is "
                       f"https://old-baton.example.com/webhooks/taskrouter, not {ours} — fix: run "
                       "`baton setup` (it adds an Event Streams sink and leaves the callback to that application), "
                       "or `baton setup --events callback --force` to replace it")


def test_workflow_differing_from_setup_is_named(stack, config):
    """A transfer workflow someone edited fails the comparison with what setup writes."""
    sim, scenario = stack.simulator, stack.scenario
    sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid, task_reservation_timeout=120)
    try:
        status, output = doctor(config)
    finally:
        sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid,
                                       task_reservation_timeout=30)

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith("FAIL the transfer workflow is what `baton setup` writes: transfer workflow")
    assert "TaskReservationTimeout is 120 s, setup writes 30 s — fix: run `baton setup`" in failure


def stored_configuration(config: Config) -> str:
    return read_workflow(TwilioGateway.from_config(config), config.transfer_workflow_sid).configuration


def test_workflow_that_can_cancel_a_transfer_is_named(stack, config):
    """A filter ending in a timed step, and no default filter, fail the shape check, each named with the fix."""
    sim, scenario = stack.simulator, stack.scenario
    stored = stored_configuration(config)
    timed = {"task_routing": {"filters": [{
        "filter_friendly_name": "to worker", "expression": 'transferTargetType == "worker"',
        "targets": [{"queue": scenario.queues["everyone"], "known_worker_sid": "task.transferTargetSid",
                     "timeout": 30}]}]}}
    sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid, configuration=timed)
    try:
        status, output = doctor(config)
    finally:
        sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid, configuration=stored)

    assert status == 1
    (shape,) = [line for line in failures(output) if line.startswith("FAIL the transfer workflow cannot cancel")]
    assert ('the last step of filter "to worker" has a timeout (30 s): TaskRouter cancels a task that times out of '
            "its filter's last step; it has no default filter") in shape
    assert shape.endswith("— fix: end every filter with a step without a timeout and keep a default filter (or run "
                          "`baton setup`, whose workflow has both)")


def test_an_edited_workflow_that_cannot_cancel_a_transfer_passes_the_shape_check(stack, config):
    """An operator's own workflow differs from setup's (a failure of its own) but is judged safe on its shape."""
    sim, scenario = stack.simulator, stack.scenario
    stored = stored_configuration(config)
    edited = json.loads(stored)
    edited["task_routing"]["filters"].append({
        "filter_friendly_name": "VIP", "expression": "vip == true",
        "targets": [{"queue": scenario.queues["support"], "timeout": 60}, {"queue": scenario.queues["everyone"]}]})
    sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid, configuration=edited)
    try:
        status, output = doctor(config)
    finally:
        sim.taskrouter.update_workflow(scenario.workspace_sid, scenario.transfer_workflow_sid, configuration=stored)

    assert status == 1
    assert [line.split(":")[0] for line in failures(output)] == ["FAIL the transfer workflow is what `baton setup` "
                                                                 "writes"]
    assert "ok   the transfer workflow cannot cancel a transfer" in output


def test_queues_reserving_several_agents_are_a_warning(stack, config):
    """A queue with MaxReservedWorkers above 1 is a warning saying Baton handles it; doctor still passes."""
    sim, scenario = stack.simulator, stack.scenario
    sim.taskrouter.update_task_queue(scenario.workspace_sid, scenario.queues["billing"], max_reserved_workers=3)
    try:
        status, output = doctor(config)
    finally:
        sim.taskrouter.update_task_queue(scenario.workspace_sid, scenario.queues["billing"], max_reserved_workers=1)

    assert status == 0 and failures(output) == []
    (warning,) = [line for line in output.splitlines() if line.startswith("WARN ")]
    assert warning.startswith("WARN task queues offer a task to one agent at a time: MaxReservedWorkers is above 1 "
                              f"in Billing {scenario.queues['billing']} (3): several agents are offered the same "
                              "transfer at once; Baton handles that")
    assert "— fix: nothing, if agents may race for a transfer; otherwise set MaxReservedWorkers to 1" in warning
    assert output.splitlines()[-1] == "all checks passed (1 warning)"


def test_a_service_webhook_shadowing_batons_is_named(stack, config):
    """Another application's post-event URL on the Flex conversation service fails, with setup --force as the fix."""
    conversations = stack.simulator.conversations
    conversations.configure_service_webhooks(post_webhook_url="https://bot.example.com/hook?key=k3y",
                                             filters=["onMessageAdded"])
    try:
        status, output = doctor(config)
    finally:
        conversations.configure_service_webhooks()

    assert status == 1
    (failure,) = failures(output)
    assert failure == ("FAIL the Flex conversation service's own webhook, if it has one, is Baton's: Conversations "
                       f"service {conversations.chat_service_sid} has its own post-event URL "
                       "https://bot.example.com/hook?key=***, which Twilio calls for its conversations instead of "
                       "the global webhook: Baton would not hear of a conversation closing or a customer leaving — "
                       "fix: run `baton setup --force` (it replaces what is there)")


def test_redis_down_is_named(config):
    """With nothing listening at REDIS_URL the Redis check fails and the worker ping is skipped."""
    closed = f"redis://127.0.0.1:{free_port()}/0"

    status, output = doctor(replace(config, redis_url=closed))

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith(f"FAIL Redis answers at {closed}: ConnectionError")
    assert f"skip a worker answers a ping: needs Redis answers at {closed}" in output
    assert f"skip beat sweeps the transfers' deadlines: needs Redis answers at {closed}" in output


def test_no_worker_is_named(config, redis_url):
    """On a broker no worker consumes from, the ping check fails and says how to start one."""
    status, output = doctor(replace(config, redis_url=redis_url))

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith("FAIL a worker answers a ping: no worker answered within 2 s on this deployment's "
                              "broker — fix: start the worker process")
    assert "skip beat sweeps the transfers' deadlines: needs a worker answers a ping" in output


@pytest.fixture
def beat_stopped(stack, config):
    """Beat killed for one test; afterwards it runs again and has swept, so no later test finds a stale sweep."""
    store = Store.from_config(config)
    stack.kill("beat")
    try:
        yield store
    finally:
        relaunched = time.time()
        stack.launch("beat")
        wait_for_a_sweep(store, since=relaunched)


def test_beat_not_running_is_named(beat_stopped, config):
    """With beat stopped, its sweep of the deadlines goes silent and doctor says to start exactly one beat."""
    beat_stopped.redis.set("baton:deadlines:swept", time.time() - 100)

    status, output = doctor(config)

    assert status == 1
    (failure,) = failures(output)
    assert failure.startswith("FAIL beat sweeps the transfers' deadlines: the deadlines were last swept 100 s ago — "
                              "fix: start exactly one beat process")


def test_beat_that_never_swept_is_named(redis_url):
    """A Redis beat has never swept (a deployment without beat) fails the check, saying how often beat sweeps."""
    check = beat_check(Store(connect_redis(redis_url)), time.time())
    assert check.failed and check.problem.startswith("the deadlines have never been swept on this Redis")
