"""Conversations v1, as the simulator serves it: conversations, participants, messages, webhooks.

Post-event webhooks go to the account's configured post-event URL (``/v1/Configuration/Webhooks``),
to the post-event URL of the service's own configuration (``/v1/Services/{IS}/Configuration/Webhooks``;
every conversation here belongs to the one service ``chat_service_sid``, the account's default) and
to each conversation-scoped webhook whose filters name the event, signed and form-encoded. Where the
service has a post-event URL, the profile's ``conversations_webhooks`` switch says whether it
replaces the global one ("service_overrides") or both are called ("both"); docs/twilio-behaviour.md
has the sources.
As on Twilio, a change made through the REST API fires them only when the request carries
``X-Twilio-Webhook-Enabled: true`` (loop protection for bots); changes the simulator makes on
behalf of SDK clients (a customer typing, Flex adding or removing an agent) fire them with
``Source=SDK``. Pre-event URLs are stored and shown but never called: nothing Baton does depends on
a pre-event hook.

Every public method takes the simulator's lock, so tests and scenarios may call them from any thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from simulator.core import (
    ApiRequest,
    ApiResult,
    Clock,
    Handler,
    SimError,
    WebhookDispatcher,
    invalid,
    iso_date,
    new_sid,
    not_found,
)
from simulator.params import header, parse_date
from simulator.profiles import Profile

HOST = "https://conversations.twilio.com"

STATES = ("initializing", "inactive", "active", "closed")

# Twilio's error codes for duplicate participants (409 Conflict).
_PARTICIPANT_EXISTS = 50433
_BINDING_EXISTS = 50416

_DURATION_RE = re.compile(r"P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?")


def _parse_duration(text: str, name: str) -> float:
    """Seconds in an ISO 8601 duration such as ``PT10M`` (the form Twilio's timers take)."""
    match = _DURATION_RE.fullmatch(text)
    if not match or text in ("P", "PT"):
        raise invalid(f"Invalid value '{text}' for parameter '{name}'; expected an ISO 8601 duration")
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    return parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]


def _json_text(value: str | Mapping[str, Any] | None, name: str = "Attributes") -> str:
    """An attributes value as Twilio stores it: a JSON string, ``{}`` when unset."""
    if value is None:
        return "{}"
    if not isinstance(value, str):
        return json.dumps(value)
    try:
        json.loads(value)
    except ValueError:
        raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected JSON") from None
    return value


def _binding_type(address: str) -> str:
    if address.startswith("whatsapp:"):
        return "whatsapp"
    if address.startswith("messenger:"):
        return "messenger"
    return "sms"


@dataclass
class Participant:
    """A conversation participant (``MB…``): a chat identity, or a messaging address."""

    sid: str
    account_sid: str
    conversation_sid: str
    identity: str | None
    attributes: str
    messaging_binding: dict[str, Any] | None
    role_sid: str | None
    date_created: float
    date_updated: float
    last_read_message_index: int | None = None
    last_read_timestamp: str | None = None

    @property
    def address(self) -> str | None:
        """The messaging address (phone number, ``whatsapp:…``), None for a chat participant."""
        return (self.messaging_binding or {}).get("address")

    def to_resource(self) -> dict[str, Any]:
        """The participant in Twilio's JSON shape."""
        return {
            "account_sid": self.account_sid,
            "conversation_sid": self.conversation_sid,
            "sid": self.sid,
            "identity": self.identity,
            "attributes": self.attributes,
            "messaging_binding": self.messaging_binding,
            "role_sid": self.role_sid,
            "date_created": iso_date(self.date_created),
            "date_updated": iso_date(self.date_updated),
            "url": f"{HOST}/v1/Conversations/{self.conversation_sid}/Participants/{self.sid}",
            "last_read_message_index": self.last_read_message_index,
            "last_read_timestamp": self.last_read_timestamp,
        }

    def event_fields(self) -> dict[str, Any]:
        """The participant's fields in ``onParticipant*`` webhooks."""
        fields = {
            "ConversationSid": self.conversation_sid,
            "ParticipantSid": self.sid,
            "DateCreated": iso_date(self.date_created),
            "DateUpdated": iso_date(self.date_updated),
            "Identity": self.identity,
            "RoleSid": self.role_sid,
            "Attributes": self.attributes,
        }
        if self.messaging_binding:
            fields["MessagingBinding.Type"] = self.messaging_binding["type"].upper()
            fields["MessagingBinding.Address"] = self.messaging_binding.get("address")
            fields["MessagingBinding.ProxyAddress"] = self.messaging_binding.get("proxy_address")
            fields["MessagingBinding.ProjectedAddress"] = self.messaging_binding.get("projected_address")
        return fields


@dataclass
class Message:
    """A conversation message (``IM…``). ``index`` counts from 0 and never repeats."""

    sid: str
    account_sid: str
    conversation_sid: str
    index: int
    author: str
    body: str | None
    attributes: str
    participant_sid: str | None
    date_created: float
    date_updated: float
    subject: str | None = None
    content_sid: str | None = None

    def to_resource(self) -> dict[str, Any]:
        """The message in Twilio's JSON shape (the subject of an email is not among its fields)."""
        url = f"{HOST}/v1/Conversations/{self.conversation_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "conversation_sid": self.conversation_sid,
            "sid": self.sid,
            "index": self.index,
            "author": self.author,
            "body": self.body,
            "media": None,
            "attributes": self.attributes,
            "participant_sid": self.participant_sid,
            "date_created": iso_date(self.date_created),
            "date_updated": iso_date(self.date_updated),
            "url": url,
            "delivery": None,
            "links": {"delivery_receipts": f"{url}/Receipts", "channel_metadata": f"{url}/ChannelMetadata"},
            "content_sid": self.content_sid,
        }


@dataclass
class ScopedWebhook:
    """A conversation-scoped webhook (``WH…``); only ``Target=webhook`` ones are called."""

    sid: str
    account_sid: str
    conversation_sid: str
    target: str
    configuration: dict[str, Any]
    date_created: float
    date_updated: float

    def to_resource(self) -> dict[str, Any]:
        """The webhook in Twilio's JSON shape."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "conversation_sid": self.conversation_sid,
            "target": self.target,
            "url": f"{HOST}/v1/Conversations/{self.conversation_sid}/Webhooks/{self.sid}",
            "configuration": self.configuration,
            "date_created": iso_date(self.date_created),
            "date_updated": iso_date(self.date_updated),
        }


@dataclass
class Conversation:
    """A conversation (``CH…``) with its participants, messages and scoped webhooks."""

    sid: str
    account_sid: str
    chat_service_sid: str
    messaging_service_sid: str | None
    friendly_name: str | None
    unique_name: str | None
    attributes: str
    state: str
    date_created: float
    date_updated: float
    timers: dict[str, float] = field(default_factory=dict)
    bindings: dict[str, Any] | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    message_by_sid: dict[str, Message] = field(default_factory=dict)
    webhooks: dict[str, ScopedWebhook] = field(default_factory=dict)
    next_index: int = 0

    def to_resource(self) -> dict[str, Any]:
        """The conversation in Twilio's JSON shape."""
        url = f"{HOST}/v1/Conversations/{self.sid}"
        timers = {}
        # Twilio shows when the timers will fire, counted from the last update.
        if "inactive" in self.timers:
            timers["date_inactive"] = iso_date(self.date_updated + self.timers["inactive"])
        if "closed" in self.timers:
            timers["date_closed"] = iso_date(self.date_updated + self.timers["closed"])
        return {
            "account_sid": self.account_sid,
            "chat_service_sid": self.chat_service_sid,
            "messaging_service_sid": self.messaging_service_sid,
            "sid": self.sid,
            "friendly_name": self.friendly_name,
            "unique_name": self.unique_name,
            "attributes": self.attributes,
            "state": self.state,
            "date_created": iso_date(self.date_created),
            "date_updated": iso_date(self.date_updated),
            "timers": timers,
            "url": url,
            "links": {
                "participants": f"{url}/Participants",
                "messages": f"{url}/Messages",
                "webhooks": f"{url}/Webhooks",
            },
            "bindings": self.bindings,
        }

    def event_fields(self) -> dict[str, Any]:
        """The conversation's fields in ``onConversation*`` webhooks."""
        return {
            "ConversationSid": self.sid,
            "ChatServiceSid": self.chat_service_sid,
            "MessagingServiceSid": self.messaging_service_sid,
            "FriendlyName": self.friendly_name,
            "UniqueName": self.unique_name,
            "Attributes": self.attributes,
            "DateCreated": iso_date(self.date_created),
            "DateUpdated": iso_date(self.date_updated),
            "State": self.state,
        }


class MessageView(Sequence[Mapping[str, Any]]):
    """A conversation's messages as resources, oldest or newest first, rendered only when read.

    Listing newest first pages through this view: a page costs its size, whatever the length of
    the conversation, because nothing is copied or reversed up front.
    """

    def __init__(self, messages: Sequence[Message], newest_first: bool):
        self._messages = messages
        self._newest_first = newest_first

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[Mapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | list[Mapping[str, Any]]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        length = len(self._messages)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError("message index out of range")
        return self._messages[length - 1 - index if self._newest_first else index].to_resource()


class Conversations:
    """The Conversations service of one account."""

    def __init__(self, account_sid: str, clock: Clock, dispatcher: WebhookDispatcher, profile: Profile | None = None):
        self.account_sid = account_sid
        self.profile = profile or Profile()
        self.chat_service_sid = new_sid("IS")
        self._clock = clock
        self._lock = clock.lock
        self._dispatcher = dispatcher
        self._conversations: dict[str, Conversation] = {}
        self.webhook_config: dict[str, Any] = {
            "method": "POST",
            "filters": [],
            "pre_webhook_url": None,
            "post_webhook_url": None,
            "target": "webhook",
        }
        # The service's own configuration has no target: its hooks are always webhooks.
        self.service_webhook_config: dict[str, Any] = {
            "method": "POST",
            "filters": [],
            "pre_webhook_url": None,
            "post_webhook_url": None,
        }

    # --- Python API -------------------------------------------------------------------------

    def conversation(self, sid_or_unique_name: str) -> Conversation:
        """The conversation with this sid or unique name; raises SimError 404."""
        with self._lock:
            found = self._conversations.get(sid_or_unique_name)
            if found is None:
                found = next((c for c in self._conversations.values() if c.unique_name == sid_or_unique_name), None)
            if found is None:
                raise not_found(f"/v1/Conversations/{sid_or_unique_name}")
            return found

    def configure_webhooks(self, *, post_webhook_url: str | None = None, filters: Sequence[str] = (),
                           pre_webhook_url: str | None = None, method: str = "POST", target: str = "webhook") -> None:
        """Set the account's global webhook configuration, as ``/v1/Configuration/Webhooks`` does."""
        with self._lock:
            self.webhook_config.update(post_webhook_url=post_webhook_url, filters=list(filters),
                                       pre_webhook_url=pre_webhook_url, method=method, target=target)

    def configure_service_webhooks(self, *, post_webhook_url: str | None = None, filters: Sequence[str] = (),
                                   pre_webhook_url: str | None = None, method: str = "POST") -> None:
        """Set the service's webhook configuration, as ``/v1/Services/{IS}/Configuration/Webhooks`` does."""
        with self._lock:
            self.service_webhook_config.update(post_webhook_url=post_webhook_url, filters=list(filters),
                                               pre_webhook_url=pre_webhook_url, method=method)

    def create_conversation(self, *, friendly_name: str | None = None, unique_name: str | None = None,
                            attributes: str | Mapping[str, Any] | None = None, state: str = "active",
                            messaging_service_sid: str | None = None, date_created: float | None = None,
                            timers: Mapping[str, float] | None = None,
                            source: str = "SDK", webhooks: bool = True) -> Conversation:
        """Create a conversation; fires ``onConversationAdded`` when ``webhooks``.

        ``timers`` maps ``inactive``/``closed`` to simulated seconds; they are stored and shown,
        not run.
        """
        with self._lock:
            if state not in STATES:
                raise invalid(f"Invalid value '{state}' for parameter 'State'")
            if unique_name and any(c.unique_name == unique_name for c in self._conversations.values()):
                raise SimError(409, 50353, f"Conversation with provided unique name {unique_name} already exists")
            now = self._clock.now()
            conversation = Conversation(
                sid=new_sid("CH"),
                account_sid=self.account_sid,
                chat_service_sid=self.chat_service_sid,
                messaging_service_sid=messaging_service_sid,
                friendly_name=friendly_name,
                unique_name=unique_name,
                attributes=_json_text(attributes),
                state=state,
                date_created=date_created or now,
                date_updated=date_created or now,
                timers=dict(timers or {}),
            )
            self._conversations[conversation.sid] = conversation
            self._notify(conversation, "onConversationAdded", conversation.event_fields(), source, webhooks)
            return conversation

    def update_conversation(self, conversation_sid: str, *, friendly_name: str | None = None,
                            unique_name: str | None = None, attributes: str | Mapping[str, Any] | None = None,
                            state: str | None = None, timers: Mapping[str, float] | None = None,
                            messaging_service_sid: str | None = None,
                            source: str = "SDK", webhooks: bool = True) -> Conversation:
        """Change a conversation; None leaves a field as it is.

        Fires ``onConversationUpdated``, and ``onConversationStateUpdated`` when the state moves.
        A closed conversation stays closed, as on Twilio.
        """
        with self._lock:
            conversation = self.conversation(conversation_sid)
            if state is not None and state not in STATES:
                raise invalid(f"Invalid value '{state}' for parameter 'State'")
            if conversation.state == "closed" and state not in (None, "closed"):
                raise invalid(f"Conversation {conversation.sid} is closed and cannot be reopened")
            if friendly_name is not None:
                conversation.friendly_name = friendly_name
            if unique_name is not None:
                conversation.unique_name = unique_name
            if attributes is not None:
                conversation.attributes = _json_text(attributes)
            if messaging_service_sid is not None:
                conversation.messaging_service_sid = messaging_service_sid
            if timers:
                conversation.timers.update(timers)
            previous_state = conversation.state
            if state is not None:
                conversation.state = state
            conversation.date_updated = self._clock.now()
            self._notify(conversation, "onConversationUpdated", conversation.event_fields(), source, webhooks)
            if conversation.state != previous_state:
                self._notify(conversation, "onConversationStateUpdated", {
                    "ConversationSid": conversation.sid,
                    "ChatServiceSid": conversation.chat_service_sid,
                    "MessagingServiceSid": conversation.messaging_service_sid,
                    "StateFrom": previous_state,
                    "StateTo": conversation.state,
                    "StateUpdated": iso_date(conversation.date_updated),
                    "Reason": "API" if source == "API" else "EVENT",
                }, source, webhooks)
            return conversation

    def close_conversation(self, conversation_sid: str, *, source: str = "SDK", webhooks: bool = True) -> Conversation:
        """Close a conversation (fires ``onConversationStateUpdated`` to ``closed``)."""
        return self.update_conversation(conversation_sid, state="closed", source=source, webhooks=webhooks)

    def delete_conversation(self, conversation_sid: str, *, source: str = "SDK", webhooks: bool = True) -> None:
        """Delete a conversation and everything in it; fires ``onConversationRemoved``."""
        with self._lock:
            conversation = self.conversation(conversation_sid)
            fields = conversation.event_fields()
            self._notify(conversation, "onConversationRemoved", fields, source, webhooks)
            del self._conversations[conversation.sid]

    def add_participant(self, conversation_sid: str, *, identity: str | None = None, address: str | None = None,
                        proxy_address: str | None = None, projected_address: str | None = None,
                        attributes: str | Mapping[str, Any] | None = None, role_sid: str | None = None,
                        date_created: float | None = None,
                        source: str = "SDK", webhooks: bool = True) -> Participant:
        """Add a chat participant (``identity``) or a messaging one (``address``/``proxy_address``).

        Fires ``onParticipantAdded``. A second participant with the same identity, or the same
        address and proxy address, is refused with Twilio's 409s.
        """
        with self._lock:
            conversation = self._open_conversation(conversation_sid)
            if not identity and not address and not projected_address:
                raise invalid("Either Identity or MessagingBinding.Address is required")
            for other in conversation.participants.values():
                if identity and other.identity == identity:
                    raise SimError(409, _PARTICIPANT_EXISTS, "Participant already exists")
                if (address and other.address == address
                        and (other.messaging_binding or {}).get("proxy_address") == proxy_address):
                    raise SimError(409, _BINDING_EXISTS, "A binding for this participant and proxy address "
                                                        f"already exists in Conversation {conversation.sid}")
            binding = None
            if address:
                binding = {"type": _binding_type(address), "address": address, "proxy_address": proxy_address}
            elif projected_address:
                binding = {"type": "sms", "projected_address": projected_address}
            now = date_created or self._clock.now()
            participant = Participant(
                sid=new_sid("MB"),
                account_sid=self.account_sid,
                conversation_sid=conversation.sid,
                identity=identity,
                attributes=_json_text(attributes),
                messaging_binding=binding,
                role_sid=role_sid,
                date_created=now,
                date_updated=now,
            )
            conversation.participants[participant.sid] = participant
            self._notify(conversation, "onParticipantAdded", participant.event_fields(), source, webhooks)
            return participant

    def update_participant(self, conversation_sid: str, participant_sid: str, *,
                           attributes: str | Mapping[str, Any] | None = None, role_sid: str | None = None,
                           identity: str | None = None, proxy_address: str | None = None,
                           last_read_message_index: int | None = None, last_read_timestamp: str | None = None,
                           source: str = "SDK", webhooks: bool = True) -> Participant:
        """Change a participant; None leaves a field as it is. Fires ``onParticipantUpdated``."""
        with self._lock:
            conversation = self.conversation(conversation_sid)
            participant = self.participant(conversation.sid, participant_sid)
            if attributes is not None:
                participant.attributes = _json_text(attributes)
            if role_sid is not None:
                participant.role_sid = role_sid
            if identity is not None:
                participant.identity = identity
            if proxy_address is not None and participant.messaging_binding:
                participant.messaging_binding["proxy_address"] = proxy_address
            if last_read_message_index is not None:
                participant.last_read_message_index = last_read_message_index
            if last_read_timestamp is not None:
                participant.last_read_timestamp = last_read_timestamp
            participant.date_updated = self._clock.now()
            self._notify(conversation, "onParticipantUpdated", participant.event_fields(), source, webhooks)
            return participant

    def participant(self, conversation_sid: str, participant_sid: str) -> Participant:
        """A participant, by sid or (as Twilio allows) by identity; raises SimError 404."""
        with self._lock:
            conversation = self.conversation(conversation_sid)
            found = conversation.participants.get(participant_sid) or next(
                (p for p in conversation.participants.values() if p.identity == participant_sid), None)
            if found is None:
                raise not_found(f"/v1/Conversations/{conversation.sid}/Participants/{participant_sid}")
            return found

    def remove_participant(self, conversation_sid: str, participant_sid: str, *,
                           source: str = "SDK", webhooks: bool = True) -> Participant:
        """Remove a participant; fires ``onParticipantRemoved``. Returns the removed participant."""
        with self._lock:
            conversation = self.conversation(conversation_sid)
            participant = self.participant(conversation.sid, participant_sid)
            del conversation.participants[participant.sid]
            fields = participant.event_fields()
            fields["DateRemoved"] = iso_date(self._clock.now())
            self._notify(conversation, "onParticipantRemoved", fields, source, webhooks)
            return participant

    def add_message(self, conversation_sid: str, author: str = "system", body: str | None = None, *,
                    attributes: str | Mapping[str, Any] | None = None, subject: str | None = None,
                    date_created: float | None = None, content_sid: str | None = None,
                    source: str = "SDK", webhooks: bool = True) -> Message:
        """Post a message, e.g. a customer's, as sent from an SDK client; fires ``onMessageAdded``.

        ``participant_sid`` is the participant whose identity or address is ``author``, if any.
        """
        with self._lock:
            conversation = self._open_conversation(conversation_sid)
            if body is None and content_sid is None:
                raise invalid("Either Body, MediaSid or ContentSid is required")
            author_participant = next(
                (p for p in conversation.participants.values() if author in (p.identity, p.address)), None)
            now = self._clock.now()
            created = date_created or now
            message = Message(
                sid=new_sid("IM"),
                account_sid=self.account_sid,
                conversation_sid=conversation.sid,
                index=conversation.next_index,
                author=author,
                body=body,
                attributes=_json_text(attributes),
                participant_sid=author_participant.sid if author_participant else None,
                date_created=created,
                date_updated=created,
                subject=subject,
                content_sid=content_sid,
            )
            conversation.next_index += 1
            conversation.messages.append(message)
            conversation.message_by_sid[message.sid] = message
            conversation.date_updated = now
            self._notify(conversation, "onMessageAdded", self._message_fields(conversation, message), source, webhooks)
            return message

    def message(self, conversation_sid: str, message_sid: str) -> Message:
        """A message by sid or index; raises SimError 404."""
        with self._lock:
            conversation = self.conversation(conversation_sid)
            found = conversation.message_by_sid.get(message_sid)
            if found is None and message_sid.isdigit():
                found = next((m for m in conversation.messages if m.index == int(message_sid)), None)
            if found is None:
                raise not_found(f"/v1/Conversations/{conversation.sid}/Messages/{message_sid}")
            return found

    def list_messages(self, conversation_sid: str, order: str = "asc") -> MessageView:
        """The conversation's messages, oldest first (``asc``) or newest first (``desc``), as a lazy view."""
        with self._lock:
            return MessageView(self.conversation(conversation_sid).messages, newest_first=order.lower() == "desc")

    # --- REST handlers ----------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """The REST handlers by OpenAPI operation id."""
        return {
            "FetchConfiguration": self._fetch_configuration,
            "FetchConfigurationWebhook": self._fetch_webhook_config,
            "UpdateConfigurationWebhook": self._update_webhook_config,
            "FetchServiceWebhookConfiguration": self._fetch_service_webhook_config,
            "UpdateServiceWebhookConfiguration": self._update_service_webhook_config,
            "CreateConversation": self._create_conversation,
            "ListConversation": self._list_conversations,
            "FetchConversation": lambda r: self.conversation(r.path_params["Sid"]).to_resource(),
            "UpdateConversation": self._update_conversation,
            "DeleteConversation": self._delete_conversation,
            "CreateConversationParticipant": self._create_participant,
            "ListConversationParticipant": self._list_participants,
            "FetchConversationParticipant": lambda r: self.participant(
                r.path_params["ConversationSid"], r.path_params["Sid"]).to_resource(),
            "UpdateConversationParticipant": self._update_participant,
            "DeleteConversationParticipant": self._delete_participant,
            "CreateConversationMessage": self._create_message,
            "ListConversationMessage": self._list_messages,
            "FetchConversationMessage": lambda r: self.message(
                r.path_params["ConversationSid"], r.path_params["Sid"]).to_resource(),
            "UpdateConversationMessage": self._update_message,
            "DeleteConversationMessage": self._delete_message,
            "CreateConversationScopedWebhook": self._create_scoped_webhook,
            "ListConversationScopedWebhook": lambda r: [
                w.to_resource() for w in self.conversation(r.path_params["ConversationSid"]).webhooks.values()],
            "FetchConversationScopedWebhook": lambda r: self._scoped_webhook(r).to_resource(),
            "UpdateConversationScopedWebhook": self._update_scoped_webhook,
            "DeleteConversationScopedWebhook": self._delete_scoped_webhook,
        }

    def _fetch_configuration(self, request: ApiRequest) -> dict[str, Any]:
        url = f"{HOST}/v1/Configuration"
        return {"account_sid": self.account_sid, "default_chat_service_sid": self.chat_service_sid,
                "default_messaging_service_sid": None, "default_inactive_timer": None, "default_closed_timer": None,
                "url": url, "links": {"webhooks": f"{url}/Webhooks"}}

    def _fetch_webhook_config(self, request: ApiRequest) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "url": f"{HOST}/v1/Configuration/Webhooks", **self.webhook_config}

    def _update_webhook_config(self, request: ApiRequest) -> dict[str, Any]:
        _update_webhook_fields(self.webhook_config, request.params)
        return self._fetch_webhook_config(request)

    def _service_webhook_url(self, request: ApiRequest) -> str:
        """The URL of the requested service's webhook configuration; 404 for a service other than ours."""
        service_sid = request.path_params["ChatServiceSid"]
        url = f"{HOST}/v1/Services/{service_sid}/Configuration/Webhooks"
        if service_sid != self.chat_service_sid:
            raise not_found(url.removeprefix(HOST))
        return url

    def _fetch_service_webhook_config(self, request: ApiRequest) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "chat_service_sid": self.chat_service_sid,
                "url": self._service_webhook_url(request), **self.service_webhook_config}

    def _update_service_webhook_config(self, request: ApiRequest) -> dict[str, Any]:
        self._service_webhook_url(request)
        _update_webhook_fields(self.service_webhook_config, request.params)
        return self._fetch_service_webhook_config(request)

    def _create_conversation(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        conversation = self.create_conversation(
            friendly_name=params.get("FriendlyName"),
            unique_name=params.get("UniqueName"),
            attributes=params.get("Attributes"),
            state=params.get("State", "active"),
            messaging_service_sid=params.get("MessagingServiceSid"),
            date_created=parse_date(params["DateCreated"], "DateCreated") if "DateCreated" in params else None,
            timers=_timers(params),
            **_api_origin(request),
        )
        if "Bindings.Email.Address" in params:
            conversation.bindings = {"email": {"address": params["Bindings.Email.Address"],
                                               "name": params.get("Bindings.Email.Name")}}
        return conversation.to_resource()

    def _list_conversations(self, request: ApiRequest) -> list[dict[str, Any]]:
        params = request.params
        start = parse_date(params["StartDate"], "StartDate") if "StartDate" in params else None
        end = parse_date(params["EndDate"], "EndDate") + 86400 if "EndDate" in params else None
        state = params.get("State")
        return [
            c.to_resource() for c in self._conversations.values()
            if (state is None or c.state == state)
            and (start is None or c.date_created >= start)
            and (end is None or c.date_created < end)
        ]

    def _update_conversation(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        conversation = self.update_conversation(
            request.path_params["Sid"],
            friendly_name=params.get("FriendlyName"),
            unique_name=params.get("UniqueName"),
            attributes=params.get("Attributes"),
            state=params.get("State"),
            timers=_timers(params),
            messaging_service_sid=params.get("MessagingServiceSid"),
            **_api_origin(request),
        )
        return conversation.to_resource()

    def _delete_conversation(self, request: ApiRequest) -> ApiResult:
        self.delete_conversation(request.path_params["Sid"], **_api_origin(request))
        return ApiResult(None, status=204)

    def _create_participant(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        participant = self.add_participant(
            request.path_params["ConversationSid"],
            identity=params.get("Identity"),
            address=params.get("MessagingBinding.Address"),
            proxy_address=params.get("MessagingBinding.ProxyAddress"),
            projected_address=params.get("MessagingBinding.ProjectedAddress"),
            attributes=params.get("Attributes"),
            role_sid=params.get("RoleSid"),
            date_created=parse_date(params["DateCreated"], "DateCreated") if "DateCreated" in params else None,
            **_api_origin(request),
        )
        return participant.to_resource()

    def _list_participants(self, request: ApiRequest) -> list[dict[str, Any]]:
        conversation = self.conversation(request.path_params["ConversationSid"])
        return [p.to_resource() for p in conversation.participants.values()]

    def _update_participant(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        index = params.get("LastReadMessageIndex")
        participant = self.update_participant(
            request.path_params["ConversationSid"], request.path_params["Sid"],
            attributes=params.get("Attributes"),
            role_sid=params.get("RoleSid"),
            identity=params.get("Identity"),
            proxy_address=params.get("MessagingBinding.ProxyAddress"),
            last_read_message_index=int(index) if index is not None else None,
            last_read_timestamp=params.get("LastReadTimestamp"),
            **_api_origin(request),
        )
        return participant.to_resource()

    def _delete_participant(self, request: ApiRequest) -> ApiResult:
        self.remove_participant(request.path_params["ConversationSid"], request.path_params["Sid"],
                                **_api_origin(request))
        return ApiResult(None, status=204)

    def _create_message(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        body = params.get("Body")
        if body is not None and len(body) > 1600:
            raise invalid("The message body exceeds the 1600 character limit")
        message = self.add_message(
            request.path_params["ConversationSid"],
            params.get("Author") or "system",
            body,
            attributes=params.get("Attributes"),
            subject=params.get("Subject"),
            date_created=parse_date(params["DateCreated"], "DateCreated") if "DateCreated" in params else None,
            content_sid=params.get("ContentSid"),
            **_api_origin(request),
        )
        return message.to_resource()

    def _list_messages(self, request: ApiRequest) -> MessageView:
        # Twilio accepts the order in any case ("DeSc" is one of the description's own examples).
        return self.list_messages(request.path_params["ConversationSid"], request.params.get("Order", "asc"))

    def _update_message(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        conversation = self.conversation(request.path_params["ConversationSid"])
        message = self.message(conversation.sid, request.path_params["Sid"])
        if "Author" in params:
            message.author = params["Author"]
        if "Body" in params:
            message.body = params["Body"]
        if "Attributes" in params:
            message.attributes = _json_text(params["Attributes"])
        if "Subject" in params:
            message.subject = params["Subject"]
        message.date_updated = self._clock.now()
        self._notify(conversation, "onMessageUpdated", self._message_fields(conversation, message),
                     "API", _webhooks_enabled(request))
        return message.to_resource()

    def _delete_message(self, request: ApiRequest) -> ApiResult:
        conversation = self.conversation(request.path_params["ConversationSid"])
        message = self.message(conversation.sid, request.path_params["Sid"])
        conversation.messages.remove(message)
        del conversation.message_by_sid[message.sid]
        self._notify(conversation, "onMessageRemoved", self._message_fields(conversation, message),
                     "API", _webhooks_enabled(request))
        return ApiResult(None, status=204)

    def _create_scoped_webhook(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        conversation = self.conversation(request.path_params["ConversationSid"])
        # Twilio allows at most five scoped webhooks per conversation.
        if len(conversation.webhooks) >= 5:
            raise invalid("A conversation can have at most 5 webhooks")
        target = params["Target"]
        if target == "webhook" and not params.get("Configuration.Url"):
            raise invalid("Configuration.Url is required for a webhook target")
        now = self._clock.now()
        webhook = ScopedWebhook(
            sid=new_sid("WH"),
            account_sid=self.account_sid,
            conversation_sid=conversation.sid,
            target=target,
            configuration={
                "url": params.get("Configuration.Url"),
                "method": params.get("Configuration.Method", "post"),
                "filters": list(params.get("Configuration.Filters", [])),
                "triggers": list(params.get("Configuration.Triggers", [])),
                "flow_sid": params.get("Configuration.FlowSid"),
                "replay_after": params.get("Configuration.ReplayAfter"),
            },
            date_created=now,
            date_updated=now,
        )
        conversation.webhooks[webhook.sid] = webhook
        return webhook.to_resource()

    def _scoped_webhook(self, request: ApiRequest) -> ScopedWebhook:
        conversation = self.conversation(request.path_params["ConversationSid"])
        webhook = conversation.webhooks.get(request.path_params["Sid"])
        if webhook is None:
            raise not_found(f"/v1/Conversations/{conversation.sid}/Webhooks/{request.path_params['Sid']}")
        return webhook

    def _update_scoped_webhook(self, request: ApiRequest) -> dict[str, Any]:
        webhook = self._scoped_webhook(request)
        params = request.params
        configuration = webhook.configuration
        if "Configuration.Url" in params:
            configuration["url"] = params["Configuration.Url"]
        if "Configuration.Method" in params:
            configuration["method"] = params["Configuration.Method"]
        if "Configuration.Filters" in params:
            configuration["filters"] = list(params["Configuration.Filters"])
        if "Configuration.Triggers" in params:
            configuration["triggers"] = list(params["Configuration.Triggers"])
        if "Configuration.FlowSid" in params:
            configuration["flow_sid"] = params["Configuration.FlowSid"]
        webhook.date_updated = self._clock.now()
        return webhook.to_resource()

    def _delete_scoped_webhook(self, request: ApiRequest) -> ApiResult:
        webhook = self._scoped_webhook(request)
        del self.conversation(webhook.conversation_sid).webhooks[webhook.sid]
        return ApiResult(None, status=204)

    # --- internals --------------------------------------------------------------------------

    def _open_conversation(self, conversation_sid: str) -> Conversation:
        conversation = self.conversation(conversation_sid)
        # A closed conversation is read-only on Twilio: no new participants or messages.
        if conversation.state == "closed":
            raise invalid(f"Conversation {conversation.sid} is closed")
        return conversation

    def _message_fields(self, conversation: Conversation, message: Message) -> dict[str, Any]:
        return {
            "ConversationSid": conversation.sid,
            "ChatServiceSid": conversation.chat_service_sid,
            "MessagingServiceSid": conversation.messaging_service_sid,
            "MessageSid": message.sid,
            "Index": message.index,
            "DateCreated": iso_date(message.date_created),
            "Body": message.body,
            "Author": message.author,
            "ParticipantSid": message.participant_sid,
            "Attributes": message.attributes,
        }

    def _notify(self, conversation: Conversation, event_type: str, fields: Mapping[str, Any],
                source: str, enabled: bool) -> None:
        """Send a post-event webhook to the service's or the global URL (or both) and the scoped webhooks."""
        if not enabled:
            return
        form = {"AccountSid": self.account_sid, "EventType": event_type, "Source": source, **fields}
        if source == "SDK" and event_type.startswith("onMessage"):
            form["ClientIdentity"] = fields.get("Author")
        # Method GET is stored but deliveries are always POSTs: Baton's receiver takes POSTs only.
        service = self.service_webhook_config
        if service["post_webhook_url"] and event_type in service["filters"]:
            self._dispatcher.send(service["post_webhook_url"], form)
        config = self.webhook_config
        global_applies = not service["post_webhook_url"] or self.profile.conversations_webhooks == "both"
        if (global_applies and config["target"] == "webhook" and config["post_webhook_url"]
                and event_type in config["filters"]):
            self._dispatcher.send(config["post_webhook_url"], form)
        for webhook in conversation.webhooks.values():
            configuration = webhook.configuration
            if webhook.target == "webhook" and event_type in configuration["filters"]:
                self._dispatcher.send(configuration["url"],
                                      {**form, "WebhookSid": webhook.sid, "WebhookType": "webhook"})


def _update_webhook_fields(config: dict[str, Any], params: Mapping[str, Any]) -> None:
    """Apply an update of a webhook configuration (global or service): the fields sent change, the others stay."""
    for name, key in (("Method", "method"), ("PreWebhookUrl", "pre_webhook_url"),
                      ("PostWebhookUrl", "post_webhook_url"), ("Target", "target")):
        if name in params:
            config[key] = params[name] or None
    if "Filters" in params:
        config["filters"] = list(params["Filters"])


def _api_origin(request: ApiRequest) -> dict[str, Any]:
    """The ``source``/``webhooks`` arguments of a change made through the REST API."""
    return {"source": "API", "webhooks": _webhooks_enabled(request)}


def _webhooks_enabled(request: ApiRequest) -> bool:
    return (header(request, "X-Twilio-Webhook-Enabled") or "").lower() == "true"


def _timers(params: Mapping[str, Any]) -> dict[str, float]:
    timers = {}
    for name, key in (("Timers.Inactive", "inactive"), ("Timers.Closed", "closed")):
        if params.get(name):
            timers[key] = _parse_duration(params[name], name)
    return timers
