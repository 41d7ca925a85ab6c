"""``baton live-check``: prove Baton on a real Flex account in two minutes.

With two test agents (one to reject, one to accept), the check plays one transfer through Twilio's
REST API only, as Baton would, and reports which reading of each behaviour Twilio's documentation
leaves open (docs/twilio-behaviour.md, `simulator.profiles.READINGS`) the account showed.

It never touches what it did not create. It makes its own conversation and interaction, a
temporary task queue that admits only the two test agents (``sid IN [...]``, checked before any
task exists) and a temporary workflow shaped like Baton's transfer workflow whose every queue is
that one: no task of the check can be offered to anyone else. It never changes an agent's
activity, and refuses to start unless both agents are available with room on the chat channel.

Everything it creates is named ``baton-live-check-<id>`` (friendly names, and the
``batonLiveCheck`` task attribute) and registered the moment it exists. Whatever happens (a
Twilio error, Ctrl-C), the cleanup undoes it all in reverse order, each undo tolerating what is
already gone, then looks for open tasks carrying the marker (one whose creation's answer was lost
on the way). What it cannot remove is printed with the command that removes it by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO, TypeVar

from baton.domain.workflow import transfer_workflow_configuration
from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import (
    CreatedInteraction,
    Invite,
    PermanentTwilioError,
    Reservation,
    RetryableTwilioError,
    TwilioError,
    TwilioGateway,
)
from baton.operator import setup

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
GUARD_FLAG = "--i-understand-this-creates-test-tasks"
GUARD_REFUSAL = (f"refused: baton live-check creates a temporary task queue, workflow, conversation and interaction on "
                 f"this account, and tasks offered to the two test agents (it deletes them all afterwards); run it "
                 f"again with {GUARD_FLAG} to go ahead")
DEFAULT_PROBE_TIMEOUT_S = 10
TASK_CHANNEL = "chat"
# Every task the check creates carries its name under this key: the cleanup finds them by it.
MARKER_KEY = "batonLiveCheck"
# Which probe a task is for: the check's own two filters route on it (no filter of Baton's looks at it).
PROBE_KEY = "batonLiveCheckProbe"
PARKED, FILTER_END = "parked", "filter_end"
NO_WORKER_EXPRESSION = 'worker.sid == "nobody"'
# Longer than the whole check. As TaskReservationTimeout: no offer of the check ever times out,
# which would move the test agent to the workspace's timeout activity. As the agent step's
# timeout: the step never expires while the check watches, which would offer the task to the
# queue as a re-match would.
LONG_TIMEOUT_S = 600
# The test agents are offered a probe task at once when the queue reserves several workers.
MAX_RESERVED_WORKERS = 2
CANCEL_REASON = "baton live-check"
UNDO_TRIES = 3
ROUTE_WRITE_TRIES = 3
OPEN_STATUSES = ("pending", "reserved")

TASKROUTER = "https://taskrouter.twilio.com/v1"
FLEX = "https://flex-api.twilio.com/v1"
CONVERSATIONS = "https://conversations.twilio.com/v1"


class Refused(Exception):
    """The check cannot start as asked; nothing was created."""


class LiveCheckFailed(Exception):
    """The account did not do what the transfer needs; the message says what and where."""


@dataclass(frozen=True)
class Timing:
    """How long the check watches: ``settle_s`` for what may not happen (a second offer at once, an
    offer without another write), ``wait_s`` for what must happen, reading every ``poll_s``."""

    settle_s: float = 5.0
    wait_s: float = 20.0
    poll_s: float = 0.5


class Row(NamedTuple):
    """A row of the report: the section of docs/twilio-behaviour.md, the behaviour, the simulator's
    switch that plays it (None: none does), and what Baton does about it."""

    section: int
    behaviour: str
    switch: str | None
    baton: str


ROWS = {
    "workflow_end": Row(1, "end of a filter", "workflow_end",
                        "no step that can end a filter has a timeout, and a default filter: either reading"),
    "redrive": Row(2, "re-drive on attribute update", "redrive",
                   "refuses offers to excluded agents, then writes the route again with a new version"),
    "reservations": Row(3, "several reservations at once", "reservations",
                        "holds every live offer; the first acceptance wins; a withdrawn offer is no refusal"),
    "invite_object": Row(4, "invite attributes sent as an object", None,
                         "sends them so; reads an invite's attributes as an object or as JSON text"),
    "invite_attributes": Row(4, "invite attributes sent as JSON text", "invite_attributes",
                             "never sends text, so either reading"),
    "conversations_webhooks": Row(5, "Conversations webhooks", "conversations_webhooks",
                                  "setup puts its URL on the global webhook, and on the service's own if it has one"),
    "iam_invalid_token": Row(6, "IAM answer to a bad token", "iam_invalid_token",
                             "answers the agent 401 invalid_token either way"),
    "reoffer": Row(7, "known worker re-offered after a rejection", None,
                   "excludes the agent and refuses any further offer to them"),
    "exclusion": Row(1, "a step's expression read at every offer", None,
                     "refuses every offer to an excluded agent; if they are offered it again, the task moves on "
                     "at the agent step's timeout"),
    "cancel": Row(8, "canceling an invite's task", None, "cancels a transfer's task so, only before acceptance"),
    "close": Row(9, "closing the agent's participant", None, "closes the sender's participant so on acceptance"),
}


@dataclass(frozen=True)
class Observation:
    """What the check saw of one row: ``observed`` is the switch's reading (None: the check could not
    tell) or, for a row without a switch, a word of what happened; ``seen`` says it in full."""

    row: str
    observed: str | None
    seen: str

    @property
    def spec(self) -> Row:
        return ROWS[self.row]


@dataclass
class Created:
    """One object the check created. ``undo`` removes it and says how ("deleted", "already canceled", …);
    ``by_hand`` is the command that removes it when the check could not."""

    kind: str
    sid: str
    purpose: str
    undo: Callable[[], str]
    by_hand: str
    outcome: str | None = None
    problem: str | None = None

    def line(self) -> str:
        what = f"{self.kind} {self.sid} ({self.purpose})"
        if self.problem is not None:
            return f"LEFT {what}: {self.problem} — remove it by hand: {self.by_hand}"
        return f"{what}: {self.outcome or 'not removed (the check stopped first)'}"


@dataclass(frozen=True)
class Report:
    """What a run saw and did: ``failure`` says why it stopped early (None: it played through);
    ``unverified`` says why the cleanup could not look for open tasks it left."""

    name: str
    observations: tuple[Observation, ...]
    created: tuple[Created, ...]
    failure: str | None
    unverified: str | None = None

    @property
    def readings(self) -> dict[str, str | None]:
        """The reading observed for each switch the check looked at (None: it could not tell)."""
        return {o.spec.switch: o.observed for o in self.observations if o.spec.switch}

    @property
    def left(self) -> tuple[Created, ...]:
        return tuple(created for created in self.created if created.problem is not None)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.failure is None and not self.left and self.unverified is None else EXIT_FAILED


def live_check_workflow(queue_sid: str, probe_timeout_s: int) -> dict[str, Any]:
    """Baton's transfer workflow with ``queue_sid`` as its every queue, behind two filters of the check's own:
    "parked" (one step no worker matches, without a timeout: its tasks wait until canceled) and "end of a
    filter" (the same step, with a timeout of ``probe_timeout_s``)."""
    routing = transfer_workflow_configuration(queue_sid, [queue_sid], queue_sid, LONG_TIMEOUT_S)["task_routing"]
    nobody = {"queue": queue_sid, "expression": NO_WORKER_EXPRESSION}
    probes = [
        {"filter_friendly_name": "live check: parked", "expression": f'{PROBE_KEY} == "{PARKED}"',
         "targets": [nobody]},
        {"filter_friendly_name": "live check: end of a filter", "expression": f'{PROBE_KEY} == "{FILTER_END}"',
         "targets": [{**nobody, "timeout": probe_timeout_s}]},
    ]
    return {"task_routing": {"filters": probes + routing["filters"], "default_filter": routing["default_filter"]}}


def only_these_workers(worker_sids: tuple[str, str]) -> str:
    """The temporary queue's ``TargetWorkers``: exactly these workers."""
    return f"sid IN [{', '.join(repr(sid) for sid in worker_sids)}]"


def forged_flex_token(account_sid: str) -> str:
    """A well-formed Flex token (a JWT like Twilio's access tokens) that no key of the account signed."""
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    now = int(time.time())
    key = "SK" + "0" * 32
    header = part(json.dumps({"typ": "JWT", "alg": "HS256", "cty": "twilio-fpa;v=1"}).encode())
    claims = part(json.dumps({"jti": f"{key}-{now}", "iss": key, "sub": account_sid, "iat": now, "exp": now + 3600,
                              "grants": {"identity": "baton-live-check"}}).encode())
    signature = hmac.new(secrets.token_bytes(32), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{part(signature)}"


def explain(error: TwilioError) -> str:
    """A Twilio failure in an operator's words."""
    if error.status == 401:
        return "Twilio refused the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    if error.status is None:
        return f"Twilio did not answer ({error}): check the network"
    code = f", code {error.code}" if error.code else ""
    return f"Twilio answered {error.status}{code} to {error}"


def curl(method: str, url: str, *form: str) -> str:
    """The command that makes one request by hand, with the account's credentials from the environment."""
    data = "".join(f" --data-urlencode '{field}'" for field in form)
    return f"curl -X {method} '{url}'{data} -u \"$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN\""


def doing(outcome: str, call: Callable[[], object]) -> Callable[[], str]:
    """An undo that makes ``call`` and reports ``outcome``."""
    def undo() -> str:
        call()
        return outcome

    return undo


# Before anything is created


def check_test_agents(gateway: TwilioGateway, rejecting: str, accepting: str) -> dict[str, str]:
    """The test agents' names by sid; raises Refused naming every agent that cannot take part."""
    if rejecting == accepting:
        raise Refused("the rejecting and the accepting agent must be two different workers")
    names, problems = {}, []
    for role, sid in (("rejecting", rejecting), ("accepting", accepting)):
        try:
            worker = gateway.fetch_worker(sid)
        except PermanentTwilioError as exc:
            if exc.status != 404:
                raise
            problems.append(f"the {role} agent {sid} is not a worker of workspace {gateway.workspace_sid}")
            continue
        names[sid] = worker.friendly_name
        if not worker.available:
            problems.append(f"the {role} agent {worker.friendly_name} {sid} is not available: set their activity to "
                            "an available one (the check never changes it)")
        elif not has_room(gateway, sid):
            problems.append(f"the {role} agent {worker.friendly_name} {sid} has no room on the {TASK_CHANNEL} channel: "
                            "end their tasks there, or switch the channel on")
    if problems:
        raise Refused("; ".join(problems))
    return names


def has_room(gateway: TwilioGateway, worker_sid: str) -> bool:
    """Whether the worker's chat channel is on, with capacity left."""
    return any(channel["task_channel_unique_name"] == TASK_CHANNEL and channel["available"]
               and channel["available_capacity_percentage"] > 0 for channel in gateway.list_worker_channels(worker_sid))


class LiveCheck:
    """One run: ``run`` plays it and always cleans up."""

    def __init__(self, gateway: TwilioGateway, config: Config, rejecting: str, accepting: str, probe_timeout_s: int,
                 timing: Timing, say: Callable[[str], None]):
        self.gateway = gateway
        self.config = config
        self.rejecting, self.accepting = rejecting, accepting
        self.probe_timeout_s = probe_timeout_s
        self.timing = timing
        self.say = say
        self.name = f"baton-live-check-{secrets.token_hex(4)}"
        self.started = time.monotonic()
        self.queue_sid: str | None = None
        self.workflow_sid: str | None = None
        self.interaction: CreatedInteraction | None = None
        self.observations: list[Observation] = []
        self.created: list[Created] = []
        self.unverified: str | None = None
        # Offers to the rejecting agent once the route excluding them was written.
        self.offers_after_exclusion: set[str] = set()

    def run(self) -> Report:
        failure = None
        try:
            self._play()
        except LiveCheckFailed as exc:
            failure = str(exc)
        except TwilioError as exc:
            failure = explain(exc)
        except KeyboardInterrupt:
            failure = "interrupted"
        finally:
            self._clean_up()
        return Report(self.name, tuple(self.observations), tuple(self.created), failure, self.unverified)

    def _play(self) -> None:
        # The two reads first: they create nothing, and are reported even if the transfer fails.
        self._probe_iam()
        self._read_webhooks()
        self._create_routing()
        self._park_conversation()
        self._probe_reservations()
        self._probe_filter_end()
        self._probe_text_attributes()
        task_sid = self._create_transfer()
        offer = self._reject_and_reroute(task_sid)
        self._accept_and_close(task_sid, offer)

    # Progress, observations and what was created

    def _progress(self, text: str) -> None:
        self.say(f"{time.monotonic() - self.started:6.1f} s  {text}")

    def _observe(self, row: str, observed: str | None, seen: str) -> None:
        self.observations.append(Observation(row, observed, seen))
        self._progress(f"§{ROWS[row].section} {ROWS[row].behaviour}: {observed or 'not observed'}")

    def _register(self, kind: str, sid: str, purpose: str, undo: Callable[[], str], by_hand: str) -> Created:
        created = Created(kind, sid, purpose, undo, by_hand)
        self.created.append(created)
        self._progress(f"created {kind} {sid} ({purpose})")
        return created

    def _register_task(self, task_sid: str, purpose: str) -> Created:
        return self._register("task", task_sid, purpose, lambda: self._end_task(task_sid),
                              curl("POST", f"{TASKROUTER}/Workspaces/{self.gateway.workspace_sid}/Tasks/{task_sid}",
                                   "AssignmentStatus=canceled"))

    @staticmethod
    def _settle(created: Created) -> None:
        """Undo ``created`` now, as a step of the check (a failure here is the check's)."""
        created.outcome = created.undo()

    # Polling

    def _watch(self, read: Callable[[], T], until: Callable[[T], bool] = bool, within_s: float | None = None) -> T:
        """The first value ``read`` gives that satisfies ``until``, or the last one read within ``within_s``
        (``settle_s`` by default)."""
        deadline = time.monotonic() + (self.timing.settle_s if within_s is None else within_s)
        while True:
            value = read()
            if until(value) or time.monotonic() >= deadline:
                return value
            time.sleep(self.timing.poll_s)

    def _await(self, read: Callable[[], T], what: str) -> T:
        """The first truthy value ``read`` gives within ``wait_s``; raises LiveCheckFailed naming ``what``."""
        value = self._watch(read, within_s=self.timing.wait_s)
        if not value:
            raise LiveCheckFailed(f"gave up waiting {self.timing.wait_s:g} s for {what}")
        return value

    # The reads

    def _probe_iam(self) -> None:
        status, valid = self.gateway.iam_answer(forged_flex_token(self.config.twilio_account_sid))
        if valid:
            raise LiveCheckFailed("IAM accepted a forged Flex token as valid")
        reading = "ok_invalid" if status == 200 else "http_401" if 400 <= status < 500 else None
        answer = "200 with valid false" if status == 200 else str(status)
        self._observe("iam_invalid_token", reading, f"IAM answered {answer} to a forged Flex token")

    def _read_webhooks(self) -> None:
        ours = self.config.public_base_url + setup.CONVERSATIONS_PATH

        def whose(url: str | None) -> str:
            if not url:
                return "not set"
            return "Baton's" if setup.same_endpoint(url, ours) else f"another application's ({setup.redact_url(url)})"

        seen = [f"the global post-event URL is {whose(setup.read_webhook(self.gateway).post_webhook_url)}"]
        service = setup.read_service_webhook(self.gateway)
        if service is None:
            seen.append("the account has no default Conversations service")
        elif service.post_webhook_url:
            seen.append(f"the Flex service {service.service_sid} has its own, {whose(service.post_webhook_url)}")
        else:
            seen.append(f"the Flex service {service.service_sid} has none of its own")
        seen.append("whether a service's own URL overrides the global one or is called besides it is not observable "
                    "here (it takes a public receiver of Twilio's webhooks); baton setup handles both")
        self._observe("conversations_webhooks", None, "; ".join(seen))

    # What the probes route through

    def _create_routing(self) -> None:
        """The temporary queue (checked to admit exactly the test agents) and the temporary workflow."""
        agents = (self.rejecting, self.accepting)
        queue = self.gateway.create_task_queue(self.name, only_these_workers(agents), MAX_RESERVED_WORKERS)
        queue_sid = self.queue_sid = queue["sid"]
        workspace = f"{TASKROUTER}/Workspaces/{self.gateway.workspace_sid}"
        self._register("task queue", queue_sid, f"{self.name}, {queue['target_workers']}",
                       doing("deleted", lambda: self.gateway.delete_task_queue(queue_sid)),
                       curl("DELETE", f"{workspace}/TaskQueues/{queue_sid}"))
        self._await(self._queue_admits_only_the_agents, "the temporary task queue to admit both test agents")
        workflow_sid = self.workflow_sid = self.gateway.create_workflow(
            self.name, live_check_workflow(queue_sid, self.probe_timeout_s), LONG_TIMEOUT_S)
        self._register("workflow", workflow_sid, self.name,
                       doing("deleted", lambda: self.gateway.delete_workflow(workflow_sid)),
                       curl("DELETE", f"{workspace}/Workflows/{workflow_sid}"))

    def _queue_admits_only_the_agents(self) -> bool:
        admitted = set(self.gateway.list_queue_workers(self.queue_sid))
        others = admitted - {self.rejecting, self.accepting}
        if others:
            raise LiveCheckFailed(f"the temporary task queue admits {', '.join(sorted(others))} besides the test "
                                  "agents: stopping before any task exists")
        return admitted == {self.rejecting, self.accepting}

    def _routing(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Routing properties through the temporary workflow, the attributes carrying the check's marker."""
        return {"workspace_sid": self.gateway.workspace_sid, "workflow_sid": self.workflow_sid,
                "task_channel_unique_name": TASK_CHANNEL, "attributes": {MARKER_KEY: self.name, **attributes}}

    def _queue_route(self, excluded: list[str]) -> dict[str, Any]:
        """Baton's routing keys for a transfer to the temporary queue."""
        return {"transferTargetType": "queue", "transferQueueSid": self.queue_sid, "transferExcludedWorkers": excluded}

    def _invite(self, purpose: str, routing: dict[str, Any]) -> tuple[Invite, Created]:
        invite = self.gateway.create_invite(self.interaction.sid, self.interaction.channel_sid, routing)
        return invite, self._register_task(invite.task_sid, purpose)

    # 1. The conversation and its interaction, whose own task is parked

    def _park_conversation(self) -> None:
        conversation_sid = self.gateway.create_conversation(self.name, {MARKER_KEY: self.name})
        self._register("conversation", conversation_sid, f"{self.name}, with its customer",
                       doing("deleted", lambda: self.gateway.delete_conversation(conversation_sid)),
                       curl("DELETE", f"{CONVERSATIONS}/Conversations/{conversation_sid}"))
        self.gateway.add_chat_participant(conversation_sid, f"{self.name}-customer")
        interaction = self.interaction = self.gateway.create_interaction(
            conversation_sid, TASK_CHANNEL, self._routing({PROBE_KEY: PARKED}))
        if not (interaction.channel_sid and interaction.task_sid):
            # Flex creates interactions asynchronously; a task it made meanwhile carries the marker for the cleanup.
            raise LiveCheckFailed(f"Flex answered interaction {interaction.sid} without its channel or its task")
        channel_url = f"{FLEX}/Interactions/{interaction.sid}/Channels/{interaction.channel_sid}"
        # Twilio offers no way to delete an interaction: closing its channel ends it.
        self._register("interaction channel", f"{interaction.sid}/{interaction.channel_sid}",
                       "the conversation's interaction",
                       doing("closed", lambda: self.gateway.close_interaction_channel(interaction.sid,
                                                                                      interaction.channel_sid)),
                       curl("POST", channel_url, "Status=closed", 'Routing={"status": "closed"}'))
        self._register_task(interaction.task_sid, "the interaction's own task, parked")
        status = self.gateway.fetch_task(interaction.task_sid).assignment_status
        if status != "pending":
            raise LiveCheckFailed(f"the interaction's task is {status}, not parked: the temporary workflow does not "
                                  "route as written")

    # 2. Several reservations at once

    def _probe_reservations(self) -> None:
        routing = self._routing({PROBE_KEY: "reservations", **self._queue_route([])})
        invite, task = self._invite("probe: several reservations at once", routing)
        offered = self._watch(lambda: self._offered_agents(invite.task_sid), until=lambda sids: len(sids) > 1)
        self._settle(task)
        self._observe("cancel", task.outcome, "canceling the probe tasks through TaskRouter (AssignmentStatus="
                      "canceled) before acceptance ended them and their offers")
        reading = {2: "per_queue", 1: "one"}.get(len(offered))
        self._observe("reservations", reading, f"with MaxReservedWorkers {MAX_RESERVED_WORKERS}, {len(offered)} test "
                      f"agent(s) were offered a task of the queue at once within {self.timing.settle_s:g} s")

    def _offered_agents(self, task_sid: str) -> list[str]:
        return sorted({r.worker_sid for r in self.gateway.list_reservations(task_sid) if r.status == "pending"})

    # 3. The end of a filter

    def _probe_filter_end(self) -> None:
        invite, task = self._invite("probe: end of a filter", self._routing({PROBE_KEY: FILTER_END}))
        within_s = self.probe_timeout_s + self.timing.wait_s
        status = self._watch(lambda: self.gateway.fetch_task(invite.task_sid).assignment_status,
                             until=lambda found: found != "pending", within_s=within_s)
        self._settle(task)
        if status == "canceled":
            reading, seen = "cancel", (f"the task was canceled once its filter's only step ({self.probe_timeout_s} s, "
                                       "no worker) timed out")
        elif status in ("reserved", "assigned"):
            reading, seen = "default_filter", ("once its filter's only step timed out, the task went on to the default "
                                               "filter and was offered to a test agent")
        else:
            reading, seen = None, f"the task was still {status} {within_s:g} s after it was created"
        self._observe("workflow_end", reading, seen)

    # 4. Invite attributes

    def _probe_text_attributes(self) -> None:
        """An invite whose attributes are JSON text: parsed, the task parks; kept as text, it takes the default filter
        (and may be offered to a test agent until it is canceled)."""
        routing = self._routing({PROBE_KEY: PARKED})
        routing["attributes"] = json.dumps(routing["attributes"])
        invite, task = self._invite("probe: invite attributes as JSON text", routing)
        stored = self.gateway.fetch_task(invite.task_sid).attributes
        self._settle(task)
        if stored.get(PROBE_KEY) == PARKED:
            reading, seen = "parsed", "Flex parsed the text: its keys are at the top level of the task's attributes"
        elif isinstance(stored.get("attributes"), str):
            reading, seen = "double_encoded", 'Flex kept the text as a string under the key "attributes"'
        else:
            reading, seen = None, f"the task's attributes have neither form (keys: {', '.join(sorted(stored))})"
        self._observe("invite_attributes", reading, seen)

    def _create_transfer(self) -> str:
        """The transfer's invite, Baton's routing keys sent as an object; returns its task's sid."""
        keys = {"transferTargetType": "worker", "transferTargetSid": self.rejecting, "transferQueueSid": None,
                "transferExcludedWorkers": []}
        transfer = {"id": self.name, "mode": "cold", "attempt": 1, "route_version": 0}
        invite, _ = self._invite("the transfer", self._routing({**keys, "transfer": transfer}))
        stored = self.gateway.fetch_task(invite.task_sid).attributes
        misplaced = sorted(key for key, value in keys.items() if stored.get(key) != value)
        if misplaced:
            raise LiveCheckFailed(f"Flex did not keep {', '.join(misplaced)} at the top level of the transfer's task "
                                  "attributes: Baton's transfer workflow could not route it")
        form = self.gateway.invite_attribute_forms(self.interaction.sid, self.interaction.channel_sid).get(invite.sid)
        shown = {"object": "an object", "string": "JSON text"}.get(form, "nothing (the invite is not listed)")
        self._observe("invite_object", "top level", "Baton's routing keys are at the top level of the new task's "
                      f"attributes; a list of the channel's invites shows them as {shown}")
        return invite.task_sid

    # 5. The rejection, the re-offer and the re-route

    def _reject_and_reroute(self, task_sid: str) -> Reservation:
        """Rejects the first offer, writes the route to the queue as Baton does, and returns the accepting agent's
        offer (writing the route a second time when the first write did not bring one)."""
        first = self._await(lambda: self._offer_to(task_sid, self.rejecting),
                            "the rejecting agent to be offered the transfer")
        self.gateway.update_reservation(task_sid, first.sid, "rejected")
        again = self._watch(lambda: self._offer_to(task_sid, self.rejecting))
        self._observe("reoffer", "re-offered at once" if again else "not re-offered",
                      f"after rejecting, the rejecting agent was {'' if again else 'not '}offered the task again "
                      f"within {self.timing.settle_s:g} s")
        self._write_route(task_sid, version=1)
        if again:
            self._refuse(task_sid, again)
        offer = self._watch(lambda: self._accepting_offer(task_sid))
        self._observe("redrive", *self._redrive_reading(again, offer))
        if offer is None:
            self._write_route(task_sid, version=2)
            offer = self._await(lambda: self._accepting_offer(task_sid),
                                "the accepting agent to be offered the transfer after the route was written again")
        late = len(self.offers_after_exclusion)
        self._observe("exclusion", "offered again" if late else "offered nothing more",
                      f"once the route excluding the rejecting agent was written, they were offered the task "
                      f"{late} more time(s)" if late else
                      "once the route excluding the rejecting agent was written, they were offered nothing more")
        return offer

    def _redrive_reading(self, reoffer: Reservation | None, offer: Reservation | None) -> tuple[str | None, str]:
        if reoffer is None:
            return None, ("not observable: the route was written while the task was pending (no re-offer), which "
                          "re-drives it under either reading")
        if offer is not None:
            return "rematch", ("the route was written while the task was offered again to the rejecting agent; once "
                               "that offer was refused, the accepting agent was offered it without another write")
        return "pending_only", ("the route was written while the task was offered again to the rejecting agent; once "
                                f"that offer was refused, nobody was offered it within {self.timing.settle_s:g} s, "
                                "until the route was written again with a new route_version")

    def _offer_to(self, task_sid: str, worker_sid: str) -> Reservation | None:
        return next((r for r in self.gateway.list_reservations(task_sid)
                     if r.status == "pending" and r.worker_sid == worker_sid), None)

    def _accepting_offer(self, task_sid: str) -> Reservation | None:
        """The accepting agent's pending offer, refusing any offer to the excluded rejecting agent as Baton does."""
        pending = [r for r in self.gateway.list_reservations(task_sid) if r.status == "pending"]
        for reservation in pending:
            if reservation.worker_sid == self.rejecting:
                self.offers_after_exclusion.add(reservation.sid)
                self._refuse(task_sid, reservation)
        return next((r for r in pending if r.worker_sid == self.accepting), None)

    def _refuse(self, task_sid: str, reservation: Reservation) -> None:
        """Reject an offer to the rejecting agent; one that already ended (400, 404, 409) is refused enough."""
        try:
            self.gateway.update_reservation(task_sid, reservation.sid, "rejected")
        except PermanentTwilioError as exc:
            if exc.status not in (400, 404, 409):
                raise

    def _write_route(self, task_sid: str, version: int) -> None:
        """Baton's re-route: the task to the queue, the rejecting agent excluded, ``transfer.route_version``."""
        for _ in range(ROUTE_WRITE_TRIES):
            task = self.gateway.fetch_task(task_sid)
            transfer = {**(task.attributes.get("transfer") or {}), "attempt": 2, "route_version": version}
            attributes = {**task.attributes, **self._queue_route([self.rejecting]), "transfer": transfer}
            try:
                self.gateway.update_task_attributes(task_sid, attributes, task.etag)
                return
            except PermanentTwilioError as exc:
                # An offer made or ended since the read changed the ETag: read again.
                if exc.status != 412:
                    raise
        raise LiveCheckFailed("the transfer's task kept changing while its route was written")

    # 6 and 7. The acceptance and the close

    def _accept_and_close(self, task_sid: str, offer: Reservation) -> None:
        self.gateway.update_reservation(task_sid, offer.sid, "accepted")
        interaction = self.interaction
        participant = self._await(lambda: next((p for p in self.gateway.list_channel_participants(
            interaction.sid, interaction.channel_sid) if p.type == "agent" and p.task_sid == task_sid), None),
            "the accepting agent to join the interaction's channel")
        self._settle(self._register(
            "agent participant", participant.sid, "the accepting agent's, in the interaction's channel",
            doing("closed", lambda: self.gateway.close_channel_participant(interaction.sid, interaction.channel_sid,
                                                                           participant.sid)),
            curl("POST", f"{FLEX}/Interactions/{interaction.sid}/Channels/{interaction.channel_sid}/Participants/"
                         f"{participant.sid}", "Status=closed")))
        status = self._watch(lambda: self.gateway.fetch_task(task_sid).assignment_status,
                             until=lambda found: found == "completed", within_s=self.timing.wait_s)
        self._observe("close", f"task {status}", f"closing the accepting agent's participant (Status=closed) left "
                      f"the transfer's task {status}")
        if status != "completed":
            raise LiveCheckFailed(f"closing the accepting agent's participant left the transfer's task {status}")

    # Cleanup

    def _clean_up(self) -> None:
        self._progress("cleaning up")
        for created in reversed(self.created):
            if created.outcome is None:
                self._undo(created)
        self._sweep_open_tasks()

    def _undo(self, created: Created) -> None:
        """Run ``created``'s undo, trying again after a 429, a 5xx or no answer; a 404 is already gone."""
        for attempt in range(1, UNDO_TRIES + 1):
            try:
                created.outcome = created.undo()
                return
            except RetryableTwilioError as exc:
                if attempt == UNDO_TRIES:
                    created.problem = explain(exc)
                    return
                time.sleep(min(1.0 if exc.retry_after is None else exc.retry_after, 5.0))
            except PermanentTwilioError as exc:
                if exc.status == 404:
                    created.outcome = "already gone"
                else:
                    created.problem = explain(exc)
                return

    def _end_task(self, task_sid: str) -> str:
        status = self.gateway.fetch_task(task_sid).assignment_status
        if status in OPEN_STATUSES:
            self.gateway.cancel_task(task_sid, CANCEL_REASON)
            return "canceled"
        if status in ("assigned", "wrapping"):
            return f"{status}: closing the interaction's channel completes it"
        return f"already {status}"

    def _sweep_open_tasks(self) -> None:
        """Open tasks carrying the marker after the undos (one whose creation's answer was lost, one the channel's
        close did not end) are canceled if they can be, else left."""
        try:
            found = self.gateway.list_open_tasks(f'{MARKER_KEY} == "{self.name}"')
        except TwilioError as exc:
            self.unverified = (f"the check could not look for tasks it left open ({explain(exc)}): list them with "
                               f"{curl('GET', self._open_tasks_url())}")
            return
        for task in found:
            created = self._register_task(task["sid"], f"found {task['assignment_status']} after the cleanup")
            self._undo(created)
            if created.problem is None and created.outcome != "canceled":
                created.problem = created.outcome

    def _open_tasks_url(self) -> str:
        return (f"{TASKROUTER}/Workspaces/{self.gateway.workspace_sid}/Tasks?EvaluateTaskAttributes="
                f"{MARKER_KEY}%20%3D%3D%20%22{self.name}%22")


# The command


def live_check(config: Config, rejecting_agent: str, accepting_agent: str,
               probe_timeout_s: int = DEFAULT_PROBE_TIMEOUT_S, timing: Timing = Timing(),
               out: TextIO | None = None) -> Report:
    """Check the agents, play the check, print its report (to ``out``, by default the standard output at the time
    of the call) and return it.

    Raises Refused (nothing created) when the agents cannot take part, and TwilioError when Twilio
    cannot be asked about them.
    """
    def say(line: str = "") -> None:
        print(line, file=out or sys.stdout, flush=True)

    gateway = TwilioGateway.from_config(config)
    names = check_test_agents(gateway, rejecting_agent, accepting_agent)
    check = LiveCheck(gateway, config, rejecting_agent, accepting_agent, probe_timeout_s, timing, say)
    say(f"baton live-check {check.name} on workspace {gateway.workspace_sid}: {names[rejecting_agent]} "
        f"{rejecting_agent} rejects, {names[accepting_agent]} {accepting_agent} accepts")
    report = check.run()
    print_report(report, say)
    return report


def print_report(report: Report, say: Callable[[str], None]) -> None:
    """The table of behaviours, what was seen, a line per object created, and the verdict."""
    observations = sorted(report.observations, key=lambda o: list(ROWS).index(o.row))
    rows = [("Behaviour (docs/twilio-behaviour.md)", "Observed", "What Baton does about it")]
    rows += [(f"§{o.spec.section} {o.spec.behaviour}" + (f" ({o.spec.switch})" if o.spec.switch else ""),
              o.observed or "not observed", o.spec.baton) for o in observations]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    say("")
    for behaviour, observed, baton in rows:
        say(f"{behaviour:<{widths[0]}}  {observed:<{widths[1]}}  {baton}")
    say("")
    say("Seen:")
    for observation in observations:
        say(f"  §{observation.spec.section} {observation.spec.behaviour}: {observation.seen}")
    say("")
    say("Created, and removed:")
    for created in report.created:
        say(f"  {created.line()}")
    if report.unverified:
        say(f"  LEFT? {report.unverified}")
    say("")
    say(verdict(report))


def verdict(report: Report) -> str:
    if report.left or report.unverified:
        left = f"the cleanup left {len(report.left)} object(s) (LEFT above)" if report.left else report.unverified
        return f"verdict: FAILED: {report.failure + '; ' if report.failure else ''}{left}"
    if report.failure:
        return f"verdict: FAILED: {report.failure}; everything the check created is gone"
    return "verdict: PASSED: one transfer played through on this account, and everything the check created is gone"


def run_live_check(config: Config, rejecting_agent: str, accepting_agent: str,
                   probe_timeout_s: int = DEFAULT_PROBE_TIMEOUT_S, timing: Timing = Timing(),
                   out: TextIO | None = None) -> int:
    """``baton live-check`` once the guard flag is given: 0 when it played through and cleaned up, 1 otherwise,
    2 when it refused to start (nothing created)."""
    try:
        return live_check(config, rejecting_agent, accepting_agent, probe_timeout_s, timing, out).exit_code
    except Refused as exc:
        print(f"refused: {exc}\nnothing was created", file=out or sys.stdout, flush=True)
        return EXIT_REFUSED
    except TwilioError as exc:
        print(f"error: {explain(exc)}\nnothing was created", file=out or sys.stdout, flush=True)
        return EXIT_FAILED
