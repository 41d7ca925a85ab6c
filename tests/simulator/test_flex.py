"""Flex Interactions through the twilio SDK: interactions, invites, participants and Flex's orchestration."""

import json

import pytest
from support.simulator import wait_until
from twilio.base.exceptions import TwilioRestException

from simulator.profiles import READINGS


@pytest.fixture
def customer_chat(sim):
    """An SMS conversation with its customer in it."""
    conversation = sim.conversations.create_conversation(friendly_name="Carol")
    sim.conversations.add_participant(conversation.sid, address="+15550001111", proxy_address="+15559990000")
    return conversation


def start_interaction(client, world, conversation_sid, **attributes):
    return client.flex_api.v1.interaction.create(
        channel={"type": "sms", "initiated_by": "customer", "properties": {"media_channel_sid": conversation_sid}},
        routing={"properties": {"workspace_sid": world.workspace_sid, "workflow_sid": world.workflow_sid,
                                "task_channel_unique_name": "sms", "attributes": attributes}},
    )


def assigned_interaction(sim, client, world, conversation_sid):
    """An interaction whose task alice has accepted: (interaction sid, channel sid, task sid)."""
    sim.agents.set_policy(world.alice, [{"action": "accept"}])
    interaction = start_interaction(client, world, conversation_sid, customerName="Carol")
    task_sid = interaction.routing["properties"]["sid"]
    wait_until(lambda: sim.taskrouter.task(task_sid).assignment_status == "assigned")
    return interaction.sid, interaction.channel["sid"], task_sid


def agent_participant(client, interaction_sid, channel_sid, task_sid):
    participants = client.flex_api.v1.interaction(interaction_sid).channels(channel_sid).participants.list()
    return next(p for p in participants if p.type == "agent" and p.routing_properties["task_sid"] == task_sid)


def test_interaction_creates_a_task_bound_to_the_conversation(sim, client, world, customer_chat):
    """Creating an interaction creates its channel, a customer participant and a task carrying Flex's attributes."""
    interaction = start_interaction(client, world, customer_chat.sid, customerName="Carol")

    channel_sid = interaction.channel["sid"]
    task = sim.taskrouter.task(interaction.routing["properties"]["sid"])
    assert task.attributes["customerName"] == "Carol"
    assert task.attributes["conversationSid"] == customer_chat.sid
    assert task.attributes["flexInteractionSid"] == interaction.sid
    assert task.attributes["flexInteractionChannelSid"] == channel_sid
    assert task.attributes["conversations"] == {"conversation_id": customer_chat.sid}
    assert task.task_channel.unique_name == "sms"
    fetched = client.flex_api.v1.interaction(interaction.sid).fetch()
    assert fetched.channel["sid"] == channel_sid
    channel = client.flex_api.v1.interaction(interaction.sid).channels(channel_sid).fetch()
    assert (channel.type, channel.status) == ("sms", "active")
    participants = client.flex_api.v1.interaction(interaction.sid).channels(channel_sid).participants.list()
    assert [p.type for p in participants] == ["customer"]


def test_accepted_offer_brings_the_agent_into_channel_and_conversation(sim, client, world, customer_chat):
    """When the agent accepts, Flex adds an agent participant naming the task and the worker joins the conversation."""
    interaction_sid, channel_sid, task_sid = assigned_interaction(sim, client, world, customer_chat.sid)

    agent = wait_until(lambda: agent_participant(client, interaction_sid, channel_sid, task_sid))
    reservation = sim.taskrouter.task(task_sid).reservations[-1]
    assert agent.routing_properties == {"workspace_sid": world.workspace_sid, "task_sid": task_sid,
                                        "worker_sid": world.alice, "reservation_sid": reservation.sid}
    identities = {p.identity for p in client.conversations.v1.conversations(customer_chat.sid).participants.list()}
    assert identities == {None, "alice"}


def invite(client, world, interaction, attributes):
    """An invite on the interaction's channel through the twilio SDK (which JSON-encodes Routing)."""
    channel = client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"])
    return channel.invites.create(routing={"properties": {
        "workspace_sid": world.workspace_sid, "workflow_sid": world.workflow_sid, "task_channel_unique_name": "sms",
        "attributes": attributes}})


def flex_keys(invite, conversation_sid: str) -> dict[str, str]:
    """The keys Flex merges into the attributes of an invite's task."""
    return {"flexChannelInviteSid": invite.sid, "conversationSid": conversation_sid,
            "flexInteractionSid": invite.interaction_sid, "flexInteractionChannelSid": invite.channel_sid}


def test_invite_creates_a_task_and_is_listed(sim, client, world, customer_chat):
    """An invite creates a task whose attributes tie it to the invite and channel, and the channel lists it."""
    interaction = start_interaction(client, world, customer_chat.sid)
    channel = client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"])

    invite = channel.invites.create(routing={"properties": {
        "workspace_sid": world.workspace_sid, "workflow_sid": world.workflow_sid, "task_channel_unique_name": "sms",
        "attributes": {"transfer": {"id": "tr-1"}}, "priority": 5,
    }})

    assert invite.sid.startswith("KG") and invite.channel_sid == channel._solution["sid"]
    properties = invite.routing["properties"]
    attributes = json.loads(properties["attributes"])
    assert attributes["transfer"] == {"id": "tr-1"}
    assert attributes["flexChannelInviteSid"] == invite.sid
    assert attributes["conversationSid"] == customer_chat.sid
    assert attributes["flexInteractionChannelSid"] == invite.channel_sid
    assert (properties["workflow_sid"], properties["priority"]) == (world.workflow_sid, 5)
    assert sim.taskrouter.task(properties["sid"]).attributes == attributes
    listed = channel.invites.list()
    assert [i.sid for i in listed] == [invite.sid]
    assert json.loads(listed[0].routing["properties"]["attributes"])["transfer"]["id"] == "tr-1"


@pytest.mark.parametrize("reading", READINGS["invite_attributes"])
def test_invite_attributes_as_an_object_are_merged_under_every_reading(sim, client, world, customer_chat, reading):
    """Attributes sent as a JSON object (the documented form) are the task's, next to Flex's keys, in both readings."""
    sim.profile.update(invite_attributes=reading)
    interaction = start_interaction(client, world, customer_chat.sid)

    created = invite(client, world, interaction, {"transfer": {"id": "tr-1"}})

    task = sim.taskrouter.task(created.routing["properties"]["sid"])
    assert task.attributes == {"transfer": {"id": "tr-1"}, **flex_keys(created, customer_chat.sid)}


def test_invite_attributes_as_a_string_are_parsed(sim, client, world, customer_chat):
    """Under "parsed" (the default), attributes sent as JSON text are read as the object they encode."""
    interaction = start_interaction(client, world, customer_chat.sid)

    created = invite(client, world, interaction, json.dumps({"transfer": {"id": "tr-1"}}))

    task = sim.taskrouter.task(created.routing["properties"]["sid"])
    assert task.attributes == {"transfer": {"id": "tr-1"}, **flex_keys(created, customer_chat.sid)}


def test_invite_attributes_as_a_string_are_double_encoded(sim, client, world, customer_chat):
    """Under "double_encoded", JSON text stays a string under "attributes": none of its keys reach the top level."""
    sim.profile.update(invite_attributes="double_encoded")
    interaction = start_interaction(client, world, customer_chat.sid)
    text = json.dumps({"transfer": {"id": "tr-1"}})

    created = invite(client, world, interaction, text)

    task = sim.taskrouter.task(created.routing["properties"]["sid"])
    assert task.attributes == {"attributes": text, **flex_keys(created, customer_chat.sid)}


@pytest.mark.parametrize("reading", READINGS["invite_attributes"])
def test_listed_invites_show_attributes_as_json_text(sim, client, world, customer_chat, reading):
    """A list of invites shows each task's attributes as a JSON string, in both readings."""
    sim.profile.update(invite_attributes=reading)
    interaction = start_interaction(client, world, customer_chat.sid)
    created = invite(client, world, interaction, {"transfer": {"id": "tr-1"}})

    (listed,) = client.flex_api.v1.interaction(interaction.sid).channels(created.channel_sid).invites.list()

    attributes = listed.routing["properties"]["attributes"]
    assert isinstance(attributes, str) and json.loads(attributes)["transfer"] == {"id": "tr-1"}


def test_invite_attributes_stored_over_4096_characters_are_refused(sim, client, world, customer_chat):
    """Flex stores the merged attributes spaced and escaped; over 4096 characters TaskRouter refuses them (400)."""
    interaction = start_interaction(client, world, customer_chat.sid)
    channel = client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"])
    attributes = {f"k{i}": "v" * 30 for i in range(98)}
    merged = {**attributes, **dict.fromkeys(["flexChannelInviteSid", "conversationSid", "flexInteractionSid",
                                             "flexInteractionChannelSid"], "X" * 34)}
    # Compact they would fit; in the stored form they do not.
    assert len(json.dumps(merged, separators=(",", ":"))) <= 4096 < len(json.dumps(merged))

    with pytest.raises(TwilioRestException) as refused:
        invite(client, world, interaction, attributes)

    assert (refused.value.status, refused.value.code) == (400, 20001)
    assert "4096" in refused.value.msg
    assert channel.invites.list() == []
    assert len(sim.flex.channel(interaction.sid, interaction.channel["sid"]).task_sids) == 1


def test_closing_the_agent_completes_its_task_and_removes_it_from_the_conversation(
        sim, client, world, customer_chat, receiver):
    """Closing an agent participant completes its task and delivers a signed onParticipantRemoved."""
    client.conversations.v1.configuration.webhooks().update(
        post_webhook_url=f"{receiver.url}/webhooks/conversations", filters=["onParticipantRemoved"])
    interaction_sid, channel_sid, task_sid = assigned_interaction(sim, client, world, customer_chat.sid)
    agent = wait_until(lambda: agent_participant(client, interaction_sid, channel_sid, task_sid))

    agent.update(status="closed")

    task = sim.taskrouter.task(task_sid)
    assert (task.assignment_status, task.reason) == ("completed", "Participant closed")
    removed = wait_until(lambda: receiver.events("onParticipantRemoved"))
    assert removed[0].valid
    assert removed[0].params["Identity"] == "alice"
    assert removed[0].params["ConversationSid"] == customer_chat.sid
    assert removed[0].params["Source"] == "SDK"
    assert {p.identity for p in client.conversations.v1.conversations(customer_chat.sid).participants.list()} == {None}


def test_closing_a_closed_participant_changes_nothing(sim, client, world, customer_chat):
    """A second close answers 200 and leaves the completed task and the conversation as they were."""
    interaction_sid, channel_sid, task_sid = assigned_interaction(sim, client, world, customer_chat.sid)
    agent = wait_until(lambda: agent_participant(client, interaction_sid, channel_sid, task_sid))
    agent.update(status="closed")

    again = agent.update(status="closed")

    assert again.sid == agent.sid
    assert sim.taskrouter.task(task_sid).assignment_status == "completed"


def test_wrapup_wraps_the_task_up_and_removes_the_agent(sim, client, world, customer_chat):
    """Setting an agent participant to wrapup moves its task to wrapping and takes the agent out of the conversation."""
    interaction_sid, channel_sid, task_sid = assigned_interaction(sim, client, world, customer_chat.sid)
    agent = wait_until(lambda: agent_participant(client, interaction_sid, channel_sid, task_sid))

    agent.update(status="wrapup")

    assert sim.taskrouter.task(task_sid).assignment_status == "wrapping"
    assert [p.identity for p in sim.conversations.conversation(customer_chat.sid).participants.values()] == [None]


def test_invite_to_a_worker_who_declines_is_canceled(sim, client, world, customer_chat):
    """An invite naming a worker goes straight to that worker; when they decline the task is canceled."""
    sim.agents.set_policy(world.bob, [{"action": "reject"}])
    interaction = start_interaction(client, world, customer_chat.sid)
    channel = client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"])

    invite = channel.invites.create(routing={"properties": {
        "workspace_sid": world.workspace_sid, "worker_sid": world.bob, "task_channel_unique_name": "sms"}})

    task_sid = invite.routing["properties"]["sid"]
    assert invite.routing["properties"]["routing_target"] == world.bob
    wait_until(lambda: sim.taskrouter.task(task_sid).assignment_status == "canceled")
    reservations = sim.taskrouter.task(task_sid).reservations
    assert {r.worker.sid for r in reservations} == {world.bob}
    assert reservations[0].status == "rejected"
    assert sim.conversations.conversation(customer_chat.sid).state == "active"


def test_invite_without_a_workspace_is_refused(client, world, customer_chat):
    """Routing properties must name the workspace, as Flex requires."""
    interaction = start_interaction(client, world, customer_chat.sid)
    channel = client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"])

    with pytest.raises(TwilioRestException) as refused:
        channel.invites.create(routing={"properties": {"workflow_sid": world.workflow_sid}})

    assert (refused.value.status, refused.value.code) == (400, 20001)
