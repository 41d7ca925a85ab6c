"""Flex Interactions v1, as the simulator serves it, with the Flex orchestration behind it.

An interaction (``KD…``) has one channel (``UO…``) bound to a conversation (``CH…``). Creating
the interaction, or an invite (``KG…``) on its channel, creates a TaskRouter task whose attributes
carry ``conversationSid``, ``flexInteractionSid`` and ``flexInteractionChannelSid`` (and, for an
invite, ``flexChannelInviteSid``). What Flex does around TaskRouter is simulated too:

- a reservation of such a task is accepted → the agent joins: an interaction participant
  (``UT…``, type agent, ``routing_properties`` naming the task, worker and reservation) and a
  conversation participant for the worker (``onParticipantAdded``, ``Source=SDK``);
- an agent participant is set to ``closed`` → its task is completed ("Participant closed") and the
  agent leaves the conversation (``onParticipantRemoved``); ``wrapup`` wraps the task up instead;
- an invite that names a ``worker_sid`` is routed straight to that worker and, as Twilio documents,
  its task is canceled when that worker declines; the conversation stays as it is.

Flex serializes the merged attributes itself, as Python's default ``json.dumps`` writes them (the
longest plausible form), and TaskRouter refuses them above 4096 characters. Routing attributes
given as a JSON string are read as the profile's ``invite_attributes`` switch says: parsed
("parsed"), or kept as a string under the key ``attributes`` ("double_encoded"); an object works in
both. docs/twilio-behaviour.md has the sources.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulator.conversations import Conversations
from simulator.core import ApiRequest, Clock, Handler, SimError, invalid, new_sid, not_found
from simulator.profiles import Profile

log = logging.getLogger(__name__)

HOST = "https://flex-api.twilio.com"

CHANNEL_TYPES = ("voice", "sms", "email", "web", "whatsapp", "chat", "messenger", "gbm")
PARTICIPANT_TYPES = ("supervisor", "customer", "external", "agent", "unknown")

# Twilio does not document the reason on the task of a declined worker invite.
DECLINED_REASON = "Invite declined by the invited worker"


def _json_param(value: Any, name: str) -> dict[str, Any]:
    """A JSON-object form parameter (the twilio SDK JSON-encodes Channel, Routing, …)."""
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value for parameter '{name}'; expected a JSON object") from None
    if not isinstance(parsed, dict):
        raise invalid(f"Invalid value for parameter '{name}'; expected a JSON object")
    return parsed


def _epoch(date: str | None) -> int | None:
    """Flex shows task dates as epoch seconds where TaskRouter shows ISO dates."""
    if not date:
        return None
    return int(datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp())


def _task_properties(task: Any) -> dict[str, Any]:
    """A TaskRouter task as Flex shows it in an interaction's or an invite's ``routing.properties``."""
    resource = task.to_resource()
    return {
        "sid": resource.get("sid"),
        "account_sid": resource.get("account_sid"),
        "workspace_sid": resource.get("workspace_sid"),
        "workflow_sid": resource.get("workflow_sid"),
        "workflow_name": resource.get("workflow_friendly_name"),
        "queue_sid": resource.get("task_queue_sid"),
        "queue_name": resource.get("task_queue_friendly_name"),
        "task_channel_sid": resource.get("task_channel_sid"),
        "task_channel_unique_name": resource.get("task_channel_unique_name"),
        "assignment_status": resource.get("assignment_status"),
        "priority": resource.get("priority"),
        "timeout": resource.get("timeout"),
        "reason": resource.get("reason"),
        "routing_target": resource.get("routing_target"),
        "attributes": resource.get("attributes"),
        "addons": resource.get("addons"),
        "age": resource.get("age"),
        "date_created": _epoch(resource.get("date_created")),
        "date_updated": _epoch(resource.get("date_updated")),
    }


@dataclass
class ChannelParticipant:
    """An interaction channel participant (``UT…``).

    ``status`` is None while the participant is in, then ``wrapup`` or ``closed``.
    ``media_properties`` name the conversation participant (``participant_sid``); Twilio's
    description does not list them among the resource's fields, so the REST answer leaves them out.
    """

    sid: str
    interaction_sid: str
    channel_sid: str
    type: str
    media_properties: dict[str, Any]
    routing_properties: dict[str, Any] | None
    status: str | None = None

    def to_resource(self) -> dict[str, Any]:
        """The participant in Twilio's JSON shape."""
        return {
            "sid": self.sid,
            "type": self.type,
            "interaction_sid": self.interaction_sid,
            "channel_sid": self.channel_sid,
            "url": f"{HOST}/v1/Interactions/{self.interaction_sid}/Channels/{self.channel_sid}/Participants/{self.sid}",
            "routing_properties": self.routing_properties,
        }


@dataclass
class Invite:
    """An invite (``KG…``) and the task it created; ``routing`` is as Flex answered at creation."""

    sid: str
    interaction_sid: str
    channel_sid: str
    task_sid: str
    worker_sid: str | None
    routing: dict[str, Any]

    def to_resource(self) -> dict[str, Any]:
        """The invite in Twilio's JSON shape."""
        return {
            "sid": self.sid,
            "interaction_sid": self.interaction_sid,
            "channel_sid": self.channel_sid,
            "routing": self.routing,
            "url": f"{HOST}/v1/Interactions/{self.interaction_sid}/Channels/{self.channel_sid}/Invites/{self.sid}",
        }


@dataclass
class InteractionChannel:
    """An interaction channel (``UO…``), bound to one conversation.

    ``task_sids`` are the tasks created for it (the interaction's and every invite's).
    """

    sid: str
    interaction_sid: str
    type: str
    conversation_sid: str
    status: str = "active"
    participants: dict[str, ChannelParticipant] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)
    task_sids: list[str] = field(default_factory=list)

    def to_resource(self) -> dict[str, Any]:
        """The channel in Twilio's JSON shape."""
        url = f"{HOST}/v1/Interactions/{self.interaction_sid}/Channels/{self.sid}"
        return {
            "sid": self.sid,
            "interaction_sid": self.interaction_sid,
            "type": self.type,
            "status": self.status,
            "error_code": None,
            "error_message": None,
            "url": url,
            "links": {
                "participants": f"{url}/Participants",
                "invites": f"{url}/Invites",
                "transfers": f"{url}/Transfers",
            },
        }


@dataclass
class Interaction:
    """An interaction (``KD…``) with its single channel."""

    sid: str
    channel: dict[str, Any]
    routing: dict[str, Any] | None
    channels: dict[str, InteractionChannel]
    interaction_context_sid: str | None = None
    webhook_ttid: str | None = None

    def to_resource(self) -> dict[str, Any]:
        """The interaction in Twilio's JSON shape."""
        url = f"{HOST}/v1/Interactions/{self.sid}"
        return {
            "sid": self.sid,
            "channel": self.channel,
            "routing": self.routing,
            "url": url,
            "links": {"channels": f"{url}/Channels"},
            "interaction_context_sid": self.interaction_context_sid,
            "webhook_ttid": self.webhook_ttid,
        }


class Flex:
    """Flex Interactions of one account, wired to its TaskRouter and Conversations."""

    def __init__(self, account_sid: str, clock: Clock, taskrouter: Any, conversations: Conversations,
                 profile: Profile | None = None):
        self.account_sid = account_sid
        self.profile = profile or Profile()
        self._clock = clock
        self._lock = clock.lock
        self._taskrouter = taskrouter
        self._conversations = conversations
        self._interactions: dict[str, Interaction] = {}
        self._channels: dict[str, InteractionChannel] = {}
        taskrouter.add_listener(self._on_taskrouter_event)

    # --- Python API -------------------------------------------------------------------------

    def interaction(self, sid: str) -> Interaction:
        """The interaction; raises SimError 404."""
        with self._lock:
            found = self._interactions.get(sid)
            if found is None:
                raise not_found(f"/v1/Interactions/{sid}")
            return found

    def channel(self, interaction_sid: str, channel_sid: str) -> InteractionChannel:
        """An interaction's channel; raises SimError 404."""
        with self._lock:
            found = self.interaction(interaction_sid).channels.get(channel_sid)
            if found is None:
                raise not_found(f"/v1/Interactions/{interaction_sid}/Channels/{channel_sid}")
            return found

    def worker_identity(self, worker_sid: str) -> str:
        """The chat identity Flex gives a worker: its ``contact_uri`` without ``client:``, else its name."""
        with self._lock:
            worker = self._taskrouter.worker(worker_sid)
            contact_uri = (worker.attributes or {}).get("contact_uri")
            if isinstance(contact_uri, str) and contact_uri:
                return contact_uri.removeprefix("client:")
            return worker.friendly_name

    def create_interaction(self, channel: Mapping[str, Any], routing: Mapping[str, Any] | None = None, *,
                           interaction_context_sid: str | None = None,
                           webhook_ttid: str | None = None) -> Interaction:
        """Create an interaction: its channel, the customer participants and (with ``routing``) the task.

        ``channel`` is Flex's Channel object: ``type``, ``initiated_by`` and either
        ``properties.media_channel_sid`` (an existing conversation) or ``participants`` (each an
        ``address``/``proxy_address`` or an ``identity``) for a new conversation.
        ``routing`` is ``{"properties": {"workspace_sid", "workflow_sid", "task_channel_unique_name",
        "attributes", …}}``.
        """
        with self._lock:
            channel_type = channel.get("type")
            if channel_type not in CHANNEL_TYPES:
                raise invalid(f"Invalid channel type {channel_type!r}")
            properties = routing.get("properties") if routing else None
            if routing is not None and not isinstance(properties, Mapping):
                raise invalid("Routing must hold a properties object")
            if properties is not None and not properties.get("workspace_sid"):
                raise invalid("Routing properties must include workspace_sid")
            conversation_sid = (channel.get("properties") or {}).get("media_channel_sid")
            if conversation_sid:
                try:
                    conversation = self._conversations.conversation(conversation_sid)
                except SimError:
                    raise invalid(f"Conversation {conversation_sid} not found") from None
            else:
                conversation = self._conversations.create_conversation()
                for member in channel.get("participants") or ():
                    self._conversations.add_participant(
                        conversation.sid, identity=member.get("identity"), address=member.get("address"),
                        proxy_address=member.get("proxy_address"))
            interaction_sid = new_sid("KD")
            uo = InteractionChannel(new_sid("UO"), interaction_sid, channel_type, conversation.sid)
            for member in list(conversation.participants.values()):
                self._add_channel_participant(uo, "customer", member.sid, None)
            interaction = Interaction(
                sid=interaction_sid,
                channel={**channel, "sid": uo.sid},
                routing=None,
                channels={uo.sid: uo},
                interaction_context_sid=interaction_context_sid,
                webhook_ttid=webhook_ttid,
            )
            if properties is not None:
                customer = next(iter(conversation.participants.values()), None)
                extra = {
                    "channelType": channel_type,
                    "direction": "outbound" if channel.get("initiated_by") == "agent" else "inbound",
                    "customerAddress": (customer.address or customer.identity) if customer else None,
                    # Flex Insights links the segments of one conversation by this id.
                    "conversations": {"conversation_id": conversation.sid},
                }
                # Created before the interaction is registered, so a refused task leaves none
                # behind; no offer can be accepted before this method returns.
                task = self._create_task(uo, properties, defaults=extra)
                interaction.routing = {"reservation": None, "properties": _task_properties(task)}
            self._interactions[interaction.sid] = interaction
            self._channels[uo.sid] = uo
            return interaction

    def create_invite(self, interaction_sid: str, channel_sid: str, routing: Mapping[str, Any]) -> Invite:
        """Invite another agent, queue or workflow to a channel: a new task routed by ``routing``.

        ``routing.properties`` takes ``workspace_sid`` (required), ``workflow_sid``, ``queue_sid``,
        ``worker_sid``, ``task_channel_unique_name`` or ``task_channel_sid``, ``attributes`` (an
        object or a JSON string), ``priority`` and ``timeout``.
        """
        with self._lock:
            uo = self.channel(interaction_sid, channel_sid)
            if uo.status == "closed":
                raise invalid(f"Channel {uo.sid} is closed")
            properties = routing.get("properties")
            if not isinstance(properties, Mapping):
                raise invalid("Routing must hold a properties object")
            sid = new_sid("KG")
            task = self._create_task(uo, properties, forced={"flexChannelInviteSid": sid})
            invite = Invite(sid, interaction_sid, uo.sid, task.sid, properties.get("worker_sid"),
                            {"reservation": None, "properties": _task_properties(task)})
            uo.invites[invite.sid] = invite
            return invite

    def close_participant(self, interaction_sid: str, channel_sid: str, participant_sid: str,
                          status: str = "closed") -> ChannelParticipant:
        """Set a channel participant to ``closed`` (task completed) or ``wrapup`` (task wrapping up).

        The agent leaves the conversation either way. Closing a participant that is already
        closed changes nothing and succeeds: Baton relies on closing being idempotent, and a
        retried close must not fail.
        """
        if status not in ("closed", "wrapup"):
            raise invalid(f"Invalid value '{status}' for parameter 'Status'")
        with self._lock:
            uo = self.channel(interaction_sid, channel_sid)
            participant = uo.participants.get(participant_sid)
            if participant is None:
                raise not_found(f"/v1/Interactions/{interaction_sid}/Channels/{channel_sid}"
                                f"/Participants/{participant_sid}")
            if participant.status == "closed" or participant.status == status:
                return participant
            routing = participant.routing_properties or {}
            if routing.get("task_sid"):
                self._end_task(routing["workspace_sid"], routing["task_sid"], complete=status == "closed")
            participant.status = status
            self._leave_conversation(uo, participant)
            return participant

    # --- REST handlers ----------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """The REST handlers by OpenAPI operation id."""
        return {
            "CreateInteraction": self._rest_create_interaction,
            "FetchInteraction": lambda r: self.interaction(r.path_params["Sid"]).to_resource(),
            "UpdateInteraction": self._rest_update_interaction,
            "ListInteractionChannel": lambda r: [
                c.to_resource() for c in self.interaction(r.path_params["InteractionSid"]).channels.values()],
            "FetchInteractionChannel": lambda r: self.channel(
                r.path_params["InteractionSid"], r.path_params["Sid"]).to_resource(),
            "UpdateInteractionChannel": self._rest_update_channel,
            "CreateInteractionChannelInvite": lambda r: self.create_invite(
                r.path_params["InteractionSid"], r.path_params["ChannelSid"],
                _json_param(r.params["Routing"], "Routing")).to_resource(),
            "ListInteractionChannelInvite": lambda r: [
                i.to_resource() for i in self._rest_channel(r).invites.values()],
            "CreateInteractionChannelParticipant": self._rest_create_participant,
            "ListInteractionChannelParticipant": lambda r: [
                p.to_resource() for p in self._rest_channel(r).participants.values()],
            "UpdateInteractionChannelParticipant": lambda r: self.close_participant(
                r.path_params["InteractionSid"], r.path_params["ChannelSid"], r.path_params["Sid"],
                r.params["Status"]).to_resource(),
        }

    def _rest_channel(self, request: ApiRequest) -> InteractionChannel:
        return self.channel(request.path_params["InteractionSid"], request.path_params["ChannelSid"])

    def _rest_create_interaction(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        routing = _json_param(params["Routing"], "Routing") if params.get("Routing") else None
        return self.create_interaction(
            _json_param(params["Channel"], "Channel"), routing,
            interaction_context_sid=params.get("InteractionContextSid"),
            webhook_ttid=params.get("WebhookTtid"),
        ).to_resource()

    def _rest_update_interaction(self, request: ApiRequest) -> dict[str, Any]:
        interaction = self.interaction(request.path_params["Sid"])
        if "WebhookTtid" in request.params:
            interaction.webhook_ttid = request.params["WebhookTtid"]
        return interaction.to_resource()

    def _rest_update_channel(self, request: ApiRequest) -> dict[str, Any]:
        uo = self.channel(request.path_params["InteractionSid"], request.path_params["Sid"])
        status = request.params["Status"]
        routing = _json_param(request.params["Routing"], "Routing") if request.params.get("Routing") else {}
        # Twilio: "inactive" needs Routing {"status": "closed"}; otherwise the tasks go to wrapping.
        complete = routing.get("status") == "closed"
        if status == "inactive" and not complete:
            raise invalid('Routing {"status": "closed"} is required to set a channel inactive')
        if uo.status == status:
            return uo.to_resource()
        for participant in uo.participants.values():
            if participant.status != "closed" and participant.type == "agent":
                participant.status = "closed" if complete else "wrapup"
        for task_sid in uo.task_sids:
            self._end_channel_task(task_sid, complete)
        uo.status = status
        conversation = self._conversations.conversation(uo.conversation_sid)
        if conversation.state != "closed":
            self._conversations.update_conversation(conversation.sid, state=status)
        return uo.to_resource()

    def _rest_create_participant(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        uo = self._rest_channel(request)
        kind = params["Type"]
        media = _json_param(params["MediaProperties"], "MediaProperties")
        routing = None
        if params.get("RoutingProperties"):
            routing = _json_param(params["RoutingProperties"], "RoutingProperties")
        binding = media.get("messaging_binding") or {}
        member = self._conversations.add_participant(
            uo.conversation_sid,
            identity=media.get("identity"),
            address=binding.get("address") or media.get("address"),
            proxy_address=binding.get("proxy_address") or media.get("proxy_address"),
        )
        return self._add_channel_participant(uo, kind, member.sid, routing).to_resource()

    # --- orchestration ----------------------------------------------------------------------

    def _create_task(self, uo: InteractionChannel, properties: Mapping[str, Any], *,
                     defaults: Mapping[str, Any] | None = None, forced: Mapping[str, Any] | None = None) -> Any:
        """Create the task for ``uo`` from Flex routing properties, with Flex's attributes merged in."""
        workspace_sid = properties.get("workspace_sid")
        if not workspace_sid:
            raise invalid("Routing properties must include workspace_sid")
        attributes = properties.get("attributes") or {}
        if isinstance(attributes, str):
            if self.profile.invite_attributes == "double_encoded":
                attributes = {"attributes": attributes}
            else:
                attributes = _json_param(attributes, "Routing.properties.attributes")
        if not isinstance(attributes, Mapping):
            raise invalid("Routing properties attributes must be a JSON object")
        merged = {**(defaults or {}), **attributes, **(forced or {})}
        merged.update(conversationSid=uo.conversation_sid, flexInteractionSid=uo.interaction_sid,
                      flexInteractionChannelSid=uo.sid)
        worker_sid = properties.get("worker_sid")
        queue_sid = properties.get("queue_sid")
        workflow_sid = properties.get("workflow_sid")
        routing_target = worker_sid or (queue_sid if not workflow_sid else None)
        try:
            task = self._taskrouter.create_task(
                workspace_sid,
                attributes=json.dumps(merged),
                workflow_sid=None if worker_sid else workflow_sid,
                task_channel=(properties.get("task_channel_unique_name") or properties.get("task_channel_sid")
                              or "default"),
                priority=int(properties.get("priority") or 0),
                timeout=int(properties["timeout"]) if properties.get("timeout") else None,
                # A worker-routed task is still counted in the invite's queue, if one is named.
                task_queue_sid=queue_sid if worker_sid else None,
                routing_target=routing_target,
            )
        except (TypeError, ValueError):
            raise invalid("Routing properties priority and timeout must be integers") from None
        uo.task_sids.append(task.sid)
        return task

    def _add_channel_participant(self, uo: InteractionChannel, kind: str, member_sid: str,
                                 routing: Mapping[str, Any] | None) -> ChannelParticipant:
        if kind not in PARTICIPANT_TYPES:
            raise invalid(f"Invalid value '{kind}' for parameter 'Type'")
        participant = ChannelParticipant(
            sid=new_sid("UT"),
            interaction_sid=uo.interaction_sid,
            channel_sid=uo.sid,
            type=kind,
            media_properties={"conversation_sid": uo.conversation_sid, "participant_sid": member_sid},
            routing_properties=dict(routing) if routing is not None else None,
        )
        uo.participants[participant.sid] = participant
        return participant

    def _on_taskrouter_event(self, event: Mapping[str, str]) -> None:
        event_type = event.get("EventType")
        if event_type not in ("reservation.accepted", "reservation.rejected"):
            return
        try:
            attributes = json.loads(event.get("TaskAttributes") or "{}")
        except ValueError:
            return
        uo = self._channels.get(attributes.get("flexInteractionChannelSid", ""))
        if uo is None:
            return
        if event_type == "reservation.accepted":
            self._join_agent(uo, event)
            return
        invite = uo.invites.get(attributes.get("flexChannelInviteSid", ""))
        if invite is not None and invite.worker_sid and invite.worker_sid == event.get("WorkerSid"):
            # TaskRouter calls listeners once the rejection is fully processed (the task may
            # already be offered to the same worker again): canceling now ends that offer too.
            try:
                self._taskrouter.cancel_task(event["WorkspaceSid"], event["TaskSid"], reason=DECLINED_REASON)
            except SimError as exc:
                log.debug("declined invite task %s not canceled: %s", event["TaskSid"], exc.message)

    def _join_agent(self, uo: InteractionChannel, event: Mapping[str, str]) -> None:
        """Flex on an accepted offer: the agent joins the channel and the conversation."""
        identity = self.worker_identity(event["WorkerSid"])
        conversation = self._conversations.conversation(uo.conversation_sid)
        member = next((p for p in conversation.participants.values() if p.identity == identity), None)
        if member is None:
            if conversation.state == "closed":
                log.warning("agent %s accepted a task of closed conversation %s", identity, conversation.sid)
                return
            member = self._conversations.add_participant(
                conversation.sid, identity=identity, attributes={"member_type": "agent"})
        self._add_channel_participant(uo, "agent", member.sid, {
            "workspace_sid": event["WorkspaceSid"],
            "task_sid": event["TaskSid"],
            "worker_sid": event["WorkerSid"],
            "reservation_sid": event["ReservationSid"],
        })

    def _leave_conversation(self, uo: InteractionChannel, participant: ChannelParticipant) -> None:
        member_sid = participant.media_properties.get("participant_sid")
        try:
            self._conversations.remove_participant(uo.conversation_sid, member_sid)
        except SimError:
            pass  # already gone: removed through the Conversations API, or the conversation deleted

    def _end_task(self, workspace_sid: str, task_sid: str, *, complete: bool) -> None:
        try:
            if complete:
                self._taskrouter.complete_task(workspace_sid, task_sid, reason="Participant closed")
            else:
                self._taskrouter.wrapup_task(workspace_sid, task_sid, reason="Participant wrapup")
        except SimError as exc:
            # Already completed (or canceled) elsewhere: closing the participant still succeeds.
            log.debug("participant close: task %s not ended: %s", task_sid, exc.message)

    def _end_channel_task(self, task_sid: str, complete: bool) -> None:
        """Closing a channel: assigned tasks wrap up (or complete), tasks not yet accepted are canceled."""
        try:
            task = self._taskrouter.task(task_sid)
        except SimError:
            return  # already deleted
        workspace_sid = task.to_resource()["workspace_sid"]
        try:
            if task.assignment_status in ("pending", "reserved"):
                self._taskrouter.cancel_task(workspace_sid, task_sid, reason="Interaction channel closed")
            elif task.assignment_status == "assigned" and not complete:
                self._taskrouter.wrapup_task(workspace_sid, task_sid, reason="Interaction channel closed")
            elif task.assignment_status in ("assigned", "wrapping") and complete:
                self._taskrouter.complete_task(workspace_sid, task_sid, reason="Interaction channel closed")
        except SimError as exc:
            log.debug("channel close: task %s not ended: %s", task_sid, exc.message)
