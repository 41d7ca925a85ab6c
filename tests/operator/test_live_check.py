"""``baton live-check`` against the simulator in process, with Bob rejecting and Carol accepting.

The simulator plays each reading of Twilio's ambiguous behaviours (simulator/profiles.py): the
check must report the reading in force, play the transfer through, and leave nothing behind, even
when Twilio fails half way. Alice (who holds the scenario's conversation), Dave and Erin are the
account's real agents: nothing of the check may reach them.
"""

from __future__ import annotations

import io

import pytest

from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import build_twilio_client
from baton.operator import cli
from baton.operator.livecheck import EXIT_OK, EXIT_REFUSED, Report, Timing, live_check, live_check_workflow
from simulator import Simulator
from simulator.profiles import PROFILES
from simulator.scenario import build_default_scenario

BASE = "https://baton.example.com"
# A probe step's 10 simulated seconds take 0.2 s; the check's 600 s offers and agent step, 12 s: longer than a run.
TIME_SCALE = 0.02
FAST = Timing(settle_s=0.3, wait_s=5.0, poll_s=0.01)
OBSERVABLE = ("workflow_end", "redrive", "reservations", "invite_attributes", "iam_invalid_token")
MIXED = {"workflow_end": "default_filter", "redrive": "pending_only", "reservations": "one",
         "invite_attributes": "parsed", "conversations_webhooks": "both", "iam_invalid_token": "http_401"}
OPEN = ["pending", "reserved", "assigned", "wrapping"]


@pytest.fixture
def sim():
    with Simulator(time_scale=TIME_SCALE) as simulator:
        simulator.serve()
        yield simulator


@pytest.fixture
def scenario(sim):
    scenario = build_default_scenario(sim)
    # The test agents answer nothing themselves: the check answers their offers by REST.
    for name in ("bob", "carol"):
        sim.agents.set_policy(scenario.agents[name], [])
    return scenario


@pytest.fixture
def config(sim, scenario) -> Config:
    return Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                  twilio_workspace_sid=scenario.workspace_sid, transfer_workflow_sid=scenario.transfer_workflow_sid,
                  public_base_url=BASE, twilio_api_base=sim.url)


def check(config: Config, scenario, accepting: str = "carol") -> tuple[Report, str]:
    out = io.StringIO()
    report = live_check(config, scenario.agents["bob"], scenario.agents[accepting], timing=FAST, out=out)
    return report, out.getvalue()


def other_agents_reservations(sim, scenario) -> dict[str, int]:
    return {name: len(sim.taskrouter.worker(sid).reservations) for name, sid in scenario.agents.items()
            if name not in ("bob", "carol")}


def assert_nothing_left(sim, scenario, config: Config, report: Report) -> None:
    """No task of the check open, its queue, workflow and conversation deleted, its interaction's channel closed."""
    client = build_twilio_client(config)
    workspace = client.taskrouter.v1.workspaces(scenario.workspace_sid)
    assert {task.sid for task in workspace.tasks.list(assignment_status=OPEN)} == {scenario.conversation.task_sid}
    assert not [q.sid for q in workspace.task_queues.list() if q.friendly_name == report.name]
    assert not [w.sid for w in workspace.workflows.list() if w.friendly_name == report.name]
    conversations = {c.sid for c in client.conversations.v1.conversations.list()}
    assert conversations == {scenario.conversation.conversation_sid}
    (channel,) = [created for created in report.created if created.kind == "interaction channel"]
    assert sim.flex.channel(*channel.sid.split("/")).status == "closed"


@pytest.mark.parametrize("switches", [PROFILES["documented"], PROFILES["alternate"], MIXED],
                         ids=["documented", "alternate", "mixed"])
def test_the_report_shows_the_reading_in_force_and_nothing_is_left(sim, scenario, config, switches):
    """Every observable switch reads as the simulator plays it; the transfer plays through; everything the check
    created is gone, and no other agent was ever offered anything."""
    sim.profile.update(**switches)
    before = other_agents_reservations(sim, scenario)

    report, output = check(config, scenario)

    assert report.exit_code == EXIT_OK, output
    assert {switch: report.readings[switch] for switch in OBSERVABLE} == {s: switches[s] for s in OBSERVABLE}
    assert report.readings["conversations_webhooks"] is None
    assert "not observable here" in output
    # The simulator reads a step's expression at every offer: once excluded, the rejecting agent gets nothing.
    (exclusion,) = [o for o in report.observations if o.row == "exclusion"]
    assert exclusion.observed == "offered nothing more"
    assert output.splitlines()[-1].startswith("verdict: PASSED")
    assert_nothing_left(sim, scenario, config, report)
    assert other_agents_reservations(sim, scenario) == before
    kinds = [created.kind for created in report.created]
    assert kinds[:4] == ["task queue", "workflow", "conversation", "interaction channel"]
    assert kinds.count("task") == 5 and kinds[-1] == "agent participant"
    for created in report.created:
        assert f"{created.kind} {created.sid} (" in output


def test_a_twilio_fault_half_way_fails_and_the_cleanup_removes_what_was_created(sim, scenario, config):
    """A 500 on the second invite stops the check (exit 1); the queue, workflow, conversation, channel and tasks
    created before it are all removed."""
    sim.faults.add(method="POST", path="/Invites", sequence=[None, 500])

    report, output = check(config, scenario)

    assert report.exit_code == 1
    assert report.failure.startswith("Twilio answered 500, code 20500 to invites.create")
    assert [created.purpose for created in report.created if created.kind == "task"] == [
        "the interaction's own task, parked", "probe: several reservations at once"]
    assert all(created.problem is None for created in report.created)
    assert output.splitlines()[-1].startswith("verdict: FAILED: Twilio answered 500")
    assert output.splitlines()[-1].endswith("everything the check created is gone")
    assert_nothing_left(sim, scenario, config, report)


def test_what_the_cleanup_cannot_remove_is_left_with_the_command_that_removes_it(sim, scenario, config):
    """A workflow Twilio will not delete (429 every time) is reported as left, and so is its queue (still in use),
    each with the request that removes it by hand; the check then fails."""
    sim.faults.add(method="DELETE", path="/Workflows/", kind=429, retry_after=0)

    report, output = check(config, scenario)

    assert report.exit_code == 1 and report.failure is None
    assert [created.kind for created in report.left] == ["task queue", "workflow"]
    workspace = f"https://taskrouter.twilio.com/v1/Workspaces/{scenario.workspace_sid}"
    (workflow,) = [line for line in output.splitlines() if line.startswith("  LEFT workflow")]
    assert "Twilio answered 429" in workflow
    assert workflow.endswith(f"remove it by hand: curl -X DELETE '{workspace}/Workflows/{report.left[1].sid}' "
                             '-u "$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN"')
    assert output.splitlines()[-1] == "verdict: FAILED: the cleanup left 2 object(s) (LEFT above)"


def test_the_guard_flag_is_required(sim, scenario, monkeypatch, capsys):
    """Without --i-understand-this-creates-test-tasks the command refuses (exit 2) before asking Twilio anything."""
    for name, value in scenario.baton_environment(sim.url, BASE).items():
        monkeypatch.setenv(name, value)

    status = cli.main(["live-check", "--rejecting-agent", scenario.agents["bob"],
                       "--accepting-agent", scenario.agents["carol"]])

    assert status == EXIT_REFUSED
    assert "--i-understand-this-creates-test-tasks" in capsys.readouterr().err
    assert len(sim.requests) == 0


def test_an_agent_not_available_is_refused_and_nothing_is_created(sim, scenario, monkeypatch, capsys):
    """Dave is offline: the command names him and refuses (exit 2) having only read; his activity is left alone."""
    for name, value in scenario.baton_environment(sim.url, BASE).items():
        monkeypatch.setenv(name, value)
    dave = scenario.agents["dave"]

    status = cli.main(["live-check", "--rejecting-agent", scenario.agents["bob"], "--accepting-agent", dave,
                       "--i-understand-this-creates-test-tasks"])

    assert status == EXIT_REFUSED
    assert capsys.readouterr().out == (f"refused: the accepting agent Dave {dave} is not available: set their activity "
                                       "to an available one (the check never changes it)\nnothing was created\n")
    assert {request.method for request in sim.requests} == {"GET"}
    assert sim.taskrouter.worker(dave).activity.friendly_name == "Offline"


def test_every_queue_of_the_temporary_workflow_is_the_temporary_queue():
    """Baton's filters, the probes' and the default filter all route to the one queue of the two test agents."""
    queue = "WQ" + "a" * 32
    routing = live_check_workflow(queue, 10)["task_routing"]

    assert {target["queue"] for each in routing["filters"] for target in each["targets"]} == {queue}
    assert routing["default_filter"] == {"queue": queue}
    parked, filter_end = routing["filters"][:2]
    assert [target.get("timeout") for target in parked["targets"] + filter_end["targets"]] == [None, 10]
