"""Conversations: webhooks as Twilio fires them, participants, messages and their Python API."""

import pytest
from sim_support import wait_until
from twilio.base.exceptions import TwilioRestException

from simulator.core import SimError


@pytest.fixture
def hooks(sim, receiver):
    """The receiver configured as the account's post-event webhook for the usual events."""
    sim.conversations.configure_webhooks(
        post_webhook_url=f"{receiver.url}/webhooks/conversations",
        filters=["onMessageAdded", "onParticipantAdded", "onConversationStateUpdated"])
    return receiver


def settle(sim):
    """Wait until every queued webhook has been delivered."""
    assert sim.dispatcher.wait_idle()


def test_rest_changes_fire_webhooks_only_with_the_header(sim, client, hooks):
    """A REST message fires onMessageAdded only when X-Twilio-Webhook-Enabled is true."""
    conversation = client.conversations.v1.conversations.create(friendly_name="Carol")
    messages = client.conversations.v1.conversations(conversation.sid).messages

    messages.create(author="bot", body="quiet")
    loud = messages.create(author="bot", body="loud", x_twilio_webhook_enabled="true")

    settle(sim)
    added = hooks.events("onMessageAdded")
    assert [(h.params["Body"], h.params["Source"]) for h in added] == [("loud", "API")]
    assert added[0].valid
    assert (added[0].params["MessageSid"], added[0].params["Index"]) == (loud.sid, "1")
    assert added[0].params["AccountSid"] == sim.account_sid


def test_sdk_changes_fire_webhooks_with_source_sdk(sim, hooks):
    """A customer's message and participant, added as from an SDK, fire their webhooks with Source=SDK."""
    conversation = sim.conversations.create_conversation()
    customer = sim.conversations.add_participant(conversation.sid, identity="carol")

    message = sim.conversations.add_message(conversation.sid, "carol", "hello", attributes={"lang": "en"})

    added = wait_until(lambda: hooks.events("onMessageAdded"))
    assert added[0].params["Source"] == "SDK" and added[0].params["ClientIdentity"] == "carol"
    assert added[0].params["ParticipantSid"] == customer.sid == message.participant_sid
    assert added[0].params["Attributes"] == '{"lang": "en"}'
    joined = wait_until(lambda: hooks.events("onParticipantAdded"))
    assert joined[0].params["Identity"] == "carol"


def test_unfiltered_events_are_not_sent(sim, hooks):
    """An event the configuration's filters do not name is not delivered."""
    conversation = sim.conversations.create_conversation()
    participant = sim.conversations.add_participant(conversation.sid, identity="carol")

    sim.conversations.remove_participant(conversation.sid, participant.sid)

    settle(sim)
    assert [h.params["EventType"] for h in hooks.received] == ["onParticipantAdded"]


def test_closing_through_rest_fires_state_updated(sim, client, hooks):
    """Closing a conversation with the header fires onConversationStateUpdated from active to closed."""
    conversation = client.conversations.v1.conversations.create()

    client.conversations.v1.conversations(conversation.sid).update(state="closed", x_twilio_webhook_enabled="true")

    updated = wait_until(lambda: hooks.events("onConversationStateUpdated"))
    assert (updated[0].params["StateFrom"], updated[0].params["StateTo"], updated[0].params["Reason"]) == (
        "active", "closed", "API")


def test_scoped_webhook_receives_its_filtered_events(sim, client, receiver):
    """A conversation-scoped webhook gets the events its filters name, signed."""
    conversation = client.conversations.v1.conversations.create()
    client.conversations.v1.conversations(conversation.sid).webhooks.create(
        target="webhook", configuration_url=f"{receiver.url}/scoped", configuration_filters=["onMessageAdded"])

    sim.conversations.add_message(conversation.sid, "carol", "hi")

    delivered = wait_until(lambda: receiver.events("onMessageAdded"))
    assert delivered[0].path == "/scoped" and delivered[0].valid


def test_duplicate_identity_is_a_conflict(client):
    """Adding a second participant with the same identity answers 409 with code 50433."""
    conversation = client.conversations.v1.conversations.create()
    participants = client.conversations.v1.conversations(conversation.sid).participants
    participants.create(identity="alice")

    with pytest.raises(TwilioRestException) as conflict:
        participants.create(identity="alice")

    assert (conflict.value.status, conflict.value.code) == (409, 50433)


def test_closed_conversation_refuses_messages(sim):
    """A closed conversation takes no new messages and cannot be reopened."""
    conversation = sim.conversations.create_conversation()
    sim.conversations.close_conversation(conversation.sid)

    with pytest.raises(SimError) as refused:
        sim.conversations.add_message(conversation.sid, "carol", "anyone?")
    with pytest.raises(SimError) as reopened:
        sim.conversations.update_conversation(conversation.sid, state="active")

    assert refused.value.status == reopened.value.status == 400


def test_participant_with_address_gets_a_messaging_binding(client):
    """An SMS participant is shown with its messaging binding and no identity."""
    conversation = client.conversations.v1.conversations.create()

    participant = client.conversations.v1.conversations(conversation.sid).participants.create(
        messaging_binding_address="+15550001111", messaging_binding_proxy_address="+15559990000")

    assert participant.identity is None
    assert participant.messaging_binding == {"type": "sms", "address": "+15550001111",
                                             "proxy_address": "+15559990000"}


def test_messages_are_listed_oldest_first_by_default(sim, client):
    """Without Order, messages come oldest first with increasing indexes and the default author system."""
    conversation = sim.conversations.create_conversation()
    messages = client.conversations.v1.conversations(conversation.sid).messages
    messages.create(body="one")
    messages.create(body="two", subject="Re: order")

    listed = messages.list()

    assert [(m.index, m.author, m.body) for m in listed] == [(0, "system", "one"), (1, "system", "two")]
    assert sim.conversations.message(conversation.sid, listed[1].sid).subject == "Re: order"


def test_several_chat_participants_without_addresses_can_join(sim):
    """Chat participants known only by identity (a customer and agents) all join one conversation."""
    conversations = sim.conversations
    conversation = conversations.create_conversation()
    for identity in ("customer-1", "alice", "bob"):
        conversations.add_participant(conversation.sid, identity=identity)
    assert sorted(p.identity for p in conversation.participants.values()) == ["alice", "bob", "customer-1"]
