"""Baton's gateway and the twilio SDK against the simulator: a transfer played by hand, step by step.

Everything Twilio-side goes through the SDK client that ``build_twilio_client`` makes (with the
gateway's URL rewriting); only the agents' answers are scripted in the simulator.
"""

from __future__ import annotations

import json

import pytest
from support.simulator import wait_until
from twilio.request_validator import RequestValidator

from baton.domain.workflow import EXCLUDE_EXPRESSION
from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TwilioGateway, build_twilio_client


@pytest.fixture
def gateway(sim, receiver):
    config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                    twilio_workspace_sid="WS" + "0" * 32, transfer_workflow_sid="WW" + "0" * 32,
                    public_base_url=receiver.url, twilio_api_base=sim.url)
    client = build_twilio_client(config)
    workspace = client.taskrouter.v1.workspaces.create(friendly_name="Contract",
                                                       event_callback_url=f"{receiver.url}/webhooks/taskrouter")
    return TwilioGateway(client, workspace.sid)


def test_reject_reroute_accept_and_close_through_the_sdk(sim, receiver, gateway):
    """Invite, rejection by the known worker, signed event, re-route excluding the rejecter, acceptance, close."""
    # The re-route lands while the rejected task is offered to the target again: only the
    # "rematch" reading routes an update made while reserved.
    sim.profile.update(redrive="rematch")
    client, ws = gateway.client, gateway.workspace_sid
    workspace = client.taskrouter.v1.workspaces(ws)
    available = next(a.sid for a in workspace.activities.list() if a.friendly_name == "Available")
    sender, target, other = (workspace.workers.create(friendly_name=name, activity_sid=available,
                                                      attributes=json.dumps({"contact_uri": f"client:{name}"}))
                             for name in ("sender", "target", "other"))
    queue = workspace.task_queues.create(friendly_name="Everyone", target_workers="1==1")
    inbound = workspace.workflows.create(friendly_name="Inbound", configuration=json.dumps({"task_routing": {
        "filters": [{"expression": "1==1", "targets": [{"queue": queue.sid, "known_worker_sid": "task.agent"}]}]}}))
    transfers = workspace.workflows.create(friendly_name="Transfers", configuration=json.dumps({"task_routing": {
        "filters": [
            {"expression": 'transferTargetType == "worker"',
             "targets": [{"queue": queue.sid, "known_worker_sid": "task.transferTargetSid", "timeout": 300}]},
            {"expression": 'transferTargetType == "queue"',
             "targets": [{"queue": queue.sid, "expression": EXCLUDE_EXPRESSION}]},
        ],
        "default_filter": {"queue": queue.sid}}}))
    sim.agents.set_policy(sender.sid, [{"action": "accept", "delay": 0}])
    sim.agents.set_policy(target.sid, [{"action": "reject", "delay": 1}])
    sim.agents.set_policy(other.sid, [{"action": "accept", "delay": 0}])

    interaction = client.flex_api.v1.interaction.create(
        channel={"type": "chat", "initiated_by": "customer", "participants": [{"identity": "customer"}]},
        routing={"properties": {"workspace_sid": ws, "workflow_sid": inbound.sid, "task_channel_unique_name": "chat",
                                "attributes": {"agent": sender.sid}}})
    channel_sid = interaction.channel["sid"]
    original = wait_until(lambda: next((p for p in gateway.list_channel_participants(interaction.sid, channel_sid)
                                        if p.type == "agent"), None))
    assert original.worker_sid == sender.sid

    invite = gateway.create_invite(interaction.sid, channel_sid, {
        "workspace_sid": ws, "workflow_sid": transfers.sid, "task_channel_unique_name": "chat",
        "attributes": {"transferTargetType": "worker", "transferTargetSid": target.sid,
                       "transferExcludedWorkers": [sender.sid], "transfer": {"id": "tr-contract"}}})
    assert [i.sid for i in gateway.list_invites(interaction.sid, channel_sid)] == [invite.sid]
    assert invite.task_attributes["transfer"] == {"id": "tr-contract"}

    rejected = wait_until(lambda: [e for e in receiver.events("reservation.rejected")
                                   if e.params.get("TaskSid") == invite.task_sid])
    hook = rejected[0]
    assert hook.valid
    assert RequestValidator(sim.auth_token).validate(receiver.url + hook.path, hook.params,
                                                     sim.dispatcher.signature(receiver.url + hook.path, hook.params))
    assert (hook.params["WorkerSid"], json.loads(hook.params["TaskAttributes"])["transfer"]["id"]) == (
        target.sid, "tr-contract")
    assert {"Sid", "TimestampMs", "ResourceType", "ReservationSid"} <= hook.params.keys()

    def reroute():
        # The rejected task keeps being re-offered to the known worker, so its ETag moves under us.
        task = gateway.fetch_task(invite.task_sid)
        rerouted = {**task.attributes, "transferTargetType": "queue",
                    "transferExcludedWorkers": [sender.sid, target.sid]}
        try:
            return task, gateway.update_task_attributes(invite.task_sid, rerouted, task.etag)
        except PermanentTwilioError as exc:
            assert exc.status == 412
            return None

    before, updated = wait_until(reroute)
    assert updated.etag != before.etag
    with pytest.raises(PermanentTwilioError) as stale:
        gateway.update_task_attributes(invite.task_sid, updated.attributes, before.etag)
    assert stale.value.status == 412

    wait_until(lambda: gateway.fetch_task(invite.task_sid).assignment_status == "assigned")
    reservations = gateway.list_reservations(invite.task_sid)
    accepted = [r.worker_sid for r in reservations if r.status == "accepted"]
    assert accepted == [other.sid]
    assert sender.sid not in {r.worker_sid for r in reservations}

    gateway.close_channel_participant(interaction.sid, channel_sid, original.sid)
    original_task = gateway.fetch_task(original.task_sid)
    assert original_task.assignment_status == "completed"
    gateway.close_channel_participant(interaction.sid, channel_sid, original.sid)  # closing twice is harmless
    agents = {p.worker_sid: p for p in gateway.list_channel_participants(interaction.sid, channel_sid)
              if p.type == "agent"}
    assert agents[other.sid].task_sid == invite.task_sid


def test_misspelled_parameter_and_bad_enum_are_refused_like_twilio(sim, gateway):
    """A misspelled form parameter or an unknown enum value gets Twilio's 400 with code 20001."""
    client, ws = gateway.client, gateway.workspace_sid
    workspace = client.taskrouter.v1.workspaces(ws)
    queue = workspace.task_queues.create(friendly_name="Everyone")
    workspace.workflows.create(friendly_name="Only", configuration=json.dumps(
        {"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}}))
    task = workspace.tasks.create(attributes="{}")
    url = f"https://taskrouter.twilio.com/v1/Workspaces/{ws}/Tasks/{task.sid}"
    for data in ({"Atributes": "{}"}, {"AssignmentStatus": "done"}):
        response = client.request("POST", url, data=data)
        body = json.loads(response.text)
        assert (response.status_code, body["code"], body["status"]) == (400, 20001, 400)
        assert body["more_info"] == "https://www.twilio.com/docs/errors/20001"
    assert "Atributes" in json.loads(client.request("POST", url, data={"Atributes": "{}"}).text)["message"]
    with pytest.raises(PermanentTwilioError) as caught:
        gateway._call("tasks.update", lambda: client.taskrouter.v1.workspaces(ws).tasks(task.sid).update(
            assignment_status="completed"))
    assert (caught.value.status, caught.value.code) == (400, 20001)


def test_unknown_task_is_a_permanent_404(gateway):
    """Fetching a task that does not exist is a permanent error with Twilio's 20404."""
    with pytest.raises(PermanentTwilioError) as caught:
        gateway.fetch_task("WT" + "f" * 32)
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_flex_token_validation(sim, gateway):
    """A token the simulator minted validates to its worker and roles; anything else is invalid."""
    worker = "WK" + "1" * 32
    token = sim.iam.mint_token(worker, "alice", roles=("agent", "supervisor"))
    info = gateway.validate_flex_token(token)
    assert (info.valid, info.worker_sid, info.identity, info.roles) == (True, worker, "alice", ("agent", "supervisor"))
    assert info.expires_at is not None
    assert gateway.validate_flex_token("not-a-token").valid is False
