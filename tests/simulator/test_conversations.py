"""Conversations: webhooks as Twilio fires them, participants, messages and their Python API."""

import pytest
from support.simulator import wait_until
from twilio.base.exceptions import TwilioRestException

from simulator.core import SimError
from simulator.profiles import READINGS


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


def test_service_webhook_configuration_is_read_and_updated_through_rest(sim, client):
    """The conversations' service is the account's default; its webhook configuration is fetched and updated."""
    service_sid = client.conversations.v1.configuration().fetch().default_chat_service_sid
    conversation = client.conversations.v1.conversations.create()
    webhooks = client.conversations.v1.services(service_sid).configuration.webhooks()

    before = webhooks.fetch()
    updated = webhooks.update(post_webhook_url="https://other.example.com/post", filters=["onMessageAdded"])

    assert service_sid == conversation.chat_service_sid == sim.conversations.chat_service_sid
    assert (before.post_webhook_url, before.filters) == (None, [])
    assert (updated.chat_service_sid, updated.post_webhook_url, updated.filters, updated.method) == (
        service_sid, "https://other.example.com/post", ["onMessageAdded"], "POST")
    assert webhooks.fetch().post_webhook_url == "https://other.example.com/post"
    assert client.conversations.v1.configuration.webhooks().fetch().post_webhook_url is None


def test_another_services_webhook_configuration_is_not_found(client):
    """Only the simulator's one service has a configuration: another IS sid is a 404."""
    with pytest.raises(TwilioRestException) as missing:
        client.conversations.v1.services("IS" + "f" * 32).configuration.webhooks().fetch()

    assert missing.value.status == 404


def service_and_global_hooks(sim, receiver):
    """The account's global webhook at /global and the service's own at /service, both for onMessageAdded."""
    sim.conversations.configure_webhooks(post_webhook_url=f"{receiver.url}/global", filters=["onMessageAdded"])
    sim.conversations.configure_service_webhooks(post_webhook_url=f"{receiver.url}/service",
                                                 filters=["onMessageAdded"])


def test_a_service_webhook_overrides_the_global_one(sim, receiver):
    """Under "service_overrides" (the default), the service's post-event URL gets the event and the global one not."""
    service_and_global_hooks(sim, receiver)
    conversation = sim.conversations.create_conversation()

    sim.conversations.add_message(conversation.sid, "carol", "hi")

    settle(sim)
    assert [(h.path, h.valid) for h in receiver.events("onMessageAdded")] == [("/service", True)]


def test_service_and_global_webhooks_are_both_called(sim, receiver):
    """Under "both", the service's and the account's post-event URLs each get the event."""
    sim.profile.update(conversations_webhooks="both")
    service_and_global_hooks(sim, receiver)
    conversation = sim.conversations.create_conversation()

    sim.conversations.add_message(conversation.sid, "carol", "hi")

    settle(sim)
    assert sorted(h.path for h in receiver.events("onMessageAdded")) == ["/global", "/service"]


@pytest.mark.parametrize("reading", READINGS["conversations_webhooks"])
def test_a_service_configuration_without_a_post_url_leaves_the_global_one(sim, receiver, reading):
    """A service configuration with only a pre-event URL overrides nothing: the global URL gets the event."""
    sim.profile.update(conversations_webhooks=reading)
    sim.conversations.configure_webhooks(post_webhook_url=f"{receiver.url}/global", filters=["onMessageAdded"])
    sim.conversations.configure_service_webhooks(pre_webhook_url=f"{receiver.url}/pre", filters=["onMessageAdd"])
    conversation = sim.conversations.create_conversation()

    sim.conversations.add_message(conversation.sid, "carol", "hi")

    settle(sim)
    assert [h.path for h in receiver.events("onMessageAdded")] == ["/global"]


@pytest.mark.parametrize("reading", READINGS["conversations_webhooks"])
def test_service_webhooks_fire_for_rest_changes_only_with_the_header(sim, client, receiver, reading):
    """Through REST, the service's webhook too fires only when X-Twilio-Webhook-Enabled is true, in both readings."""
    sim.profile.update(conversations_webhooks=reading)
    service_and_global_hooks(sim, receiver)
    messages = client.conversations.v1.conversations(client.conversations.v1.conversations.create().sid).messages

    messages.create(author="bot", body="quiet")
    messages.create(author="bot", body="loud", x_twilio_webhook_enabled="true")

    settle(sim)
    assert {h.params["Body"] for h in receiver.events("onMessageAdded")} == {"loud"}
    assert "/service" in {h.path for h in receiver.events("onMessageAdded")}


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
