"""The one place Baton talks to Twilio.

``build_twilio_client(config)`` is the only constructor of the twilio REST client: it injects
``RoutingHttpClient``, which sends every request with a connect and a read timeout over pooled
keep-alive connections, tries reads again on a server or connection error (urllib3's ``Retry``) and,
when ``TWILIO_API_BASE`` is set, sends them to the simulator instead of Twilio.
``TwilioGateway`` has one method per remote operation and turns every failure into
``RetryableTwilioError`` or ``PermanentTwilioError``, so callers decide on retries in one way.
``TwilioPacer`` spreads its requests to each endpoint under Twilio's limit for it, across every process.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.util.retry import Retry

from baton.domain.attributes import serialize_attributes
from baton.infrastructure import metrics
from baton.infrastructure.config import Config
from baton.infrastructure.store import Store

CONNECT_TIMEOUT_S = 3.05
READ_TIMEOUT_S = 10.0
# A read (GET) that meets a server error (5xx), loses its connection or times out is tried again by urllib3, below
# the SDK: three tries in all, the second at once, the third a quarter second later (urllib3 waits backoff_factor *
# 2**(n-1) before the n-th retry, nothing before the first). Repeating a read is harmless, and it spares the caller a
# whole retry of its work. A 429 is not tried again here, nor is any Retry-After waited on: the caller honours it
# without blocking a worker. The last answer is handed to the SDK (raise_on_status=False), so it is classified like
# any other. A write is tried again only when no connection could be made (nothing reached Twilio); ``other=0``: no
# error that may have reached Twilio is repeated for a write.
READ_RETRY = Retry(total=2, other=0, backoff_factor=0.125, status_forcelist=frozenset(range(500, 600)),
                   allowed_methods=frozenset({"GET"}), raise_on_status=False, respect_retry_after_header=False)
# Validating a Flex token changes nothing: IAM's POST is a read.
IAM_RETRY = READ_RETRY.new(allowed_methods=frozenset({"GET", "POST"}))
_TWILIO_URL = re.compile(r"^https://(?P<product>[a-z-]+)\.twilio\.com/")
# Twilio's error codes about an access token itself (20101 invalid, 20104 expired, …).
ACCESS_TOKEN_ERROR_CODES = range(20100, 20200)
# The operations whose requests Twilio counts against another operation's endpoint (cancelling a task is an
# update of it); every other operation is its own endpoint.
SHARED_ENDPOINTS = {"tasks.cancel": "tasks.update"}
# How many requests to one endpoint may go at once, in seconds of its limit: a quarter second's worth (5 of the
# Interactions API's 20/s, 1 of a 3/s list) spares the calls of a quiet moment any wait, and leaves three
# quarters of Twilio's second as margin for requests that reach Twilio closer together than they left.
PACING_BURST_S = 0.25
# After Redis fails to answer, requests go unpaced this long before Redis is asked again: Twilio's own 429 is
# still there, and a Twilio call must not wait on a Redis that is away.
PACING_PAUSE_AFTER_REDIS_ERROR_S = 30.0

log = logging.getLogger(__name__)


class TwilioError(Exception):
    """A Twilio request that did not succeed.

    endpoint: which operation failed (e.g. ``tasks.update``), for the timeline and metrics.
    status: the HTTP status, or None when no response arrived.
    code: Twilio's error code from the response body, when there was one.
    """

    def __init__(self, endpoint: str, message: str, status: int | None = None, code: int | None = None):
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status = status
        self.code = code


class RetryableTwilioError(TwilioError):
    """Worth trying again: 429, 5xx, a connection error or a timeout.

    retry_after: seconds Twilio asked us to wait (``Retry-After``), or None.
    """

    def __init__(self, endpoint: str, message: str, status: int | None = None, code: int | None = None,
                 retry_after: float | None = None):
        super().__init__(endpoint, message, status, code)
        self.retry_after = retry_after


class PermanentTwilioError(TwilioError):
    """Trying again cannot help (a 4xx other than 429): the request or the resource's state is wrong."""


class _EnvironmentOnceSession(requests.Session):
    """requests' Session, reading the environment's proxy and CA settings once per origin, not at every request
    (requests reads the environment and every proxy variable again each time: a tenth of a Twilio call's CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        if proxies:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return self._environment[key]


class RoutingHttpClient(HttpClient):
    """twilio's HTTP client contract over one pooled ``requests.Session``.

    With ``api_base`` set, ``https://{product}.twilio.com/{path}`` becomes ``{api_base}/{product}/{path}``;
    the rewrite happens here, below the SDK, so the absolute ``next_page_url`` of paged lists is
    rewritten too. The last response of each thread is kept so the gateway can read headers the
    SDK drops (``Retry-After``).
    """

    def __init__(self, api_base: str | None = None, timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                 pool_size: int = 16):
        super().__init__(logging.getLogger("twilio.http_client"), is_async=False, timeout=None)
        self.api_base = api_base.rstrip("/") if api_base else None
        self.request_timeout = timeout
        self.session = _EnvironmentOnceSession()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=READ_RETRY)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # requests picks the adapter of the longest prefix a URL starts with.
        self.session.mount(self.route("https://iam.twilio.com/"),
                           HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=IAM_RETRY))
        self._local = threading.local()

    def route(self, url: str) -> str:
        """Where a request for ``url`` really goes."""
        if self.api_base is None:
            return url
        return _TWILIO_URL.sub(lambda m: f"{self.api_base}/{m['product']}/", url, count=1)

    @property
    def last_response(self) -> Response | None:  # type: ignore[override]
        return getattr(self._local, "response", None)

    @last_response.setter
    def last_response(self, response: Response | None) -> None:
        self._local.response = response

    def request(self, method: str, url: str, params: Mapping[str, Any] | None = None, data: Any = None,
                headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
                timeout: float | None = None, allow_redirects: bool = False) -> Response:
        self.last_response = None
        raw = self.session.request(
            method.upper(), self.route(url), params=params, data=data, headers=headers, auth=auth,
            timeout=timeout or self.request_timeout, allow_redirects=allow_redirects,
        )
        self.last_response = Response(raw.status_code, raw.text, raw.headers)
        return self.last_response


def build_twilio_client(config: Config) -> Client:
    """The twilio REST client for ``config``; the only place one is created."""
    # edge/region would rewrite host labels, which corrupts a simulator URL (twilio-python's ClientBase.get_hostname).
    return Client(config.twilio_account_sid, config.twilio_auth_token,
                  http_client=RoutingHttpClient(config.twilio_api_base), edge=None, region=None,
                  environment={})


@dataclass(frozen=True)
class TaskSnapshot:
    """A TaskRouter task as read, with the ETag that guards the next update."""

    sid: str
    attributes: dict[str, Any]
    assignment_status: str
    task_queue_sid: str | None
    workflow_sid: str | None
    task_channel_unique_name: str | None
    etag: str | None


@dataclass(frozen=True)
class Worker:
    """A TaskRouter worker: ``available`` says whether its activity lets it take work now."""

    sid: str
    friendly_name: str
    attributes: dict[str, Any]
    available: bool


@dataclass(frozen=True)
class Reservation:
    sid: str
    worker_sid: str
    status: str


@dataclass(frozen=True)
class Invite:
    """An Interactions invite and the task it created."""

    sid: str
    task_sid: str | None
    task_attributes: dict[str, Any]


@dataclass(frozen=True)
class ChannelParticipant:
    """A participant of an interaction channel; agents carry their task and worker."""

    sid: str
    type: str
    worker_sid: str | None
    task_sid: str | None


@dataclass(frozen=True)
class Message:
    sid: str
    index: int
    author: str
    body: str | None
    participant_sid: str | None
    date_created: datetime | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationParticipant:
    sid: str
    identity: str | None
    address: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class CreatedInteraction:
    """A new interaction: its channel and the task its routing created."""

    sid: str
    channel_sid: str
    task_sid: str


@dataclass(frozen=True)
class FlexToken:
    """What IAM says of a Flex token."""

    valid: bool
    worker_sid: str | None = None
    identity: str | None = None
    roles: tuple[str, ...] = ()
    expires_at: datetime | None = None


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        decoded = json.loads(value or "{}")
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _retry_after(response: Response | None) -> float | None:
    header = response.headers.get("Retry-After") if response is not None and response.headers else None
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(header) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


class TwilioPacer:
    """Keeps Baton's requests to each Twilio endpoint of an account under a rate, whichever process sends them.

    Each paced endpoint has a token bucket in Redis (``Store.take_twilio_slot``) filled at its rate. A request
    takes the next slot and sleeps until it; when that slot is more than ``max_wait_s`` away, nothing is taken
    and the request fails at once as ``RetryableTwilioError`` with the wait as its ``retry_after``: a worker
    runs the action again that much later (the engine's countdown) instead of sleeping through it, and a web
    request answers 503 with Retry-After instead of hanging. Requests of endpoints without a limit, and all
    requests while Redis does not answer, go at once.

    limits: requests per second by the gateway's endpoint name (``invites.create``).
    """

    def __init__(self, store: Store, account_sid: str, limits: Mapping[str, float], max_wait_s: float,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.account_sid = account_sid
        self.limits = dict(limits)
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self._unpaced_until = 0.0

    def wait_turn(self, endpoint: str) -> None:
        """Return when a request to ``endpoint`` may go; raise RetryableTwilioError when its turn is too far."""
        endpoint = SHARED_ENDPOINTS.get(endpoint, endpoint)
        per_second = self.limits.get(endpoint)
        if not per_second or self._clock() < self._unpaced_until:
            return
        try:
            slot = self.store.take_twilio_slot(self.account_sid, endpoint, per_second,
                                               max(1, int(per_second * PACING_BURST_S)), self.max_wait_s)
        except redis.RedisError as exc:
            self._unpaced_until = self._clock() + PACING_PAUSE_AFTER_REDIS_ERROR_S
            log.warning("Twilio requests go unpaced for %.0f s: Redis did not answer (%s)",
                        PACING_PAUSE_AFTER_REDIS_ERROR_S, exc.__class__.__name__)
            return
        if not slot.taken:
            raise RetryableTwilioError(endpoint, f"paced: the next of {per_second:g} requests/s is "
                                                 f"{slot.wait_s:.2f} s away", retry_after=slot.wait_s)
        if slot.wait_s > 0:
            self._sleep(slot.wait_s)


class TwilioGateway:
    """Baton's Twilio operations; each names its endpoint and raises only TwilioError subclasses.

    pacer: spaces the requests under Twilio's limits (``from_config`` gives one); None sends them at once.
    """

    def __init__(self, client: Client, workspace_sid: str, pacer: TwilioPacer | None = None):
        self.client = client
        self.workspace_sid = workspace_sid
        self.pacer = pacer
        self._http: RoutingHttpClient = client.http_client  # type: ignore[assignment]

    @classmethod
    def from_config(cls, config: Config) -> "TwilioGateway":
        """The gateway of ``config``, paced under ``config.twilio_rate_limits`` with Baton's Redis."""
        pacer = None
        if config.twilio_rate_limits:
            pacer = TwilioPacer(Store.from_config(config), config.twilio_account_sid, config.twilio_rate_limits,
                                config.twilio_pacing_max_wait_s)
        return cls(build_twilio_client(config), config.twilio_workspace_sid, pacer)

    def _call(self, endpoint: str, operation):
        """Every Twilio request goes through here: paced, then timed and counted by endpoint, its failure
        classified. A request refused by the pacer never reached Twilio: it is not counted."""
        if self.pacer is not None:
            self.pacer.wait_turn(endpoint)
        started, failure = time.perf_counter(), None
        try:
            return self._attempt(endpoint, operation)
        except TwilioError as exc:
            failure = "retryable" if isinstance(exc, RetryableTwilioError) else "permanent"
            raise
        finally:
            metrics.twilio_requested(endpoint, time.perf_counter() - started, failure)

    def _attempt(self, endpoint: str, operation):
        try:
            return operation()
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise RetryableTwilioError(endpoint, exc.msg, exc.status, exc.code,
                                           _retry_after(self._http.last_response)) from exc
            raise PermanentTwilioError(endpoint, exc.msg, exc.status, exc.code) from exc
        except requests.RequestException as exc:
            raise RetryableTwilioError(endpoint, exc.__class__.__name__) from exc
        except TwilioException as exc:  # e.g. a body that is not JSON: a broken proxy, not our request
            # A list's page that failed is raised as a bare TwilioException ("Unable to fetch page"): its 429 or 5xx
            # keeps the status, code and Retry-After the answer carried.
            response = self._http.last_response
            if response is not None and (response.status_code == 429 or response.status_code >= 500):
                code = _json_object(response.text).get("code")
                raise RetryableTwilioError(endpoint, str(exc), response.status_code,
                                           code if isinstance(code, int) else None, _retry_after(response)) from exc
            raise RetryableTwilioError(endpoint, str(exc)) from exc

    @property
    def _workspace(self):
        return self.client.taskrouter.v1.workspaces(self.workspace_sid)

    # TaskRouter

    def fetch_task(self, task_sid: str) -> TaskSnapshot:
        """GET /v1/Workspaces/{WS}/Tasks/{WT}, with its ETag."""
        answer = self._call("tasks.fetch", lambda: self._workspace.tasks(task_sid).fetch_with_http_info())
        return self._task_snapshot(answer)

    def update_task_attributes(self, task_sid: str, attributes: Mapping[str, Any], etag: str | None) -> TaskSnapshot:
        """POST /v1/Workspaces/{WS}/Tasks/{WT} with ``Attributes`` and ``If-Match``.

        A pending task is re-driven through its workflow by TaskRouter when its attributes change.
        A 412 (someone changed the task since ``etag``) is a PermanentTwilioError with status 412.
        """
        body = serialize_attributes(attributes)
        answer = self._call("tasks.update", lambda: self._workspace.tasks(task_sid).update_with_http_info(
            attributes=body, if_match=etag))
        return self._task_snapshot(answer)

    def cancel_task(self, task_sid: str, reason: str) -> None:
        """POST /v1/Workspaces/{WS}/Tasks/{WT} with ``AssignmentStatus=canceled``."""
        self._call("tasks.cancel", lambda: self._workspace.tasks(task_sid).update(
            assignment_status="canceled", reason=reason))

    def list_reservations(self, task_sid: str) -> list[Reservation]:
        """GET /v1/Workspaces/{WS}/Tasks/{WT}/Reservations."""
        records = self._call("reservations.list", lambda: self._workspace.tasks(task_sid).reservations.list())
        return [Reservation(r.sid, r.worker_sid, r.reservation_status) for r in records]

    def update_reservation(self, task_sid: str, reservation_sid: str, status: str) -> Reservation:
        """POST /v1/Workspaces/{WS}/Tasks/{WT}/Reservations/{WR} with ``ReservationStatus``."""
        record = self._call("reservations.update", lambda: self._workspace.tasks(task_sid).reservations(
            reservation_sid).update(reservation_status=status))
        return Reservation(record.sid, record.worker_sid, record.reservation_status)

    def fetch_worker(self, worker_sid: str) -> Worker:
        """GET /v1/Workspaces/{WS}/Workers/{WK}."""
        worker = self._call("workers.fetch", lambda: self._workspace.workers(worker_sid).fetch())
        return Worker(worker.sid, worker.friendly_name, _json_object(worker.attributes), bool(worker.available))

    def fetch_friendly_name(self, sid: str) -> str:
        """The friendly name of a worker (``WK…``), a queue (``WQ…``) or a workflow (``WW…``): one GET of it."""
        resources = {"WK": ("workers.fetch", self._workspace.workers),
                     "WQ": ("task_queues.fetch", self._workspace.task_queues),
                     "WW": ("workflows.fetch", self._workspace.workflows)}
        endpoint, resource = resources[sid[:2]]
        return self._call(endpoint, lambda: resource(sid).fetch()).friendly_name

    def list_workflows(self) -> list[tuple[str, str]]:
        """GET /v1/Workspaces/{WS}/Workflows (all pages): each workflow's sid and friendly name."""
        records = self._call("workflows.list", lambda: self._workspace.workflows.list())
        return [(record.sid, record.friendly_name) for record in records]

    # Flex Interactions

    def create_invite(self, interaction_sid: str, channel_sid: str, routing_properties: Mapping[str, Any]) -> Invite:
        """POST /v1/Interactions/{KD}/Channels/{UO}/Invites: a new task for the same conversation.

        ``attributes`` go as a JSON object inside ``Routing`` (the SDK JSON-encodes it), the form
        Twilio's docs show: a string could be stored double-encoded. Flex merges its own keys into
        them and serializes the result itself (``baton.domain.attributes`` measures what it stores).
        """
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        properties = dict(routing_properties)
        record = self._call("invites.create", lambda: channel.invites.create(routing={"properties": properties}))
        return self._invite(record)

    def list_invites(self, interaction_sid: str, channel_sid: str) -> list[Invite]:
        """GET /v1/Interactions/{KD}/Channels/{UO}/Invites (a list shows the task's attributes as JSON text)."""
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        return [self._invite(r) for r in self._call("invites.list", lambda: channel.invites.list())]

    def list_channel_participants(self, interaction_sid: str, channel_sid: str) -> list[ChannelParticipant]:
        """GET /v1/Interactions/{KD}/Channels/{UO}/Participants."""
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        records = self._call("participants.list", lambda: channel.participants.list())
        participants = []
        for record in records:
            routing = record.routing_properties or {}
            participants.append(ChannelParticipant(record.sid, record.type, routing.get("worker_sid"),
                                                   routing.get("task_sid")))
        return participants

    def close_channel_participant(self, interaction_sid: str, channel_sid: str, participant_sid: str,
                                  status: str = "closed") -> None:
        """POST /v1/Interactions/{KD}/Channels/{UO}/Participants/{UT} with ``Status=closed|wrapup``.

        Closing an agent's participant completes (or wraps up) that agent's task.
        """
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        self._call("participants.update", lambda: channel.participants(participant_sid).update(status=status))

    # Conversations

    def recent_messages(self, conversation_sid: str, page_size: int = 50) -> Iterator[Message]:
        """GET /v1/Conversations/{CH}/Messages?Order=desc, newest first, one page at a time.

        Pages are fetched only as the caller iterates, so a caller that stops early costs
        requests in proportion to what it read, not to the conversation's length.
        """
        messages = self.client.conversations.v1.conversations(conversation_sid).messages
        page = self._call("messages.list", lambda: messages.page(order="desc", page_size=page_size))
        while page is not None:
            for record in page:
                yield Message(record.sid, record.index, record.author, record.body, record.participant_sid,
                              record.date_created, _json_object(record.attributes))
            page = self._call("messages.list", page.next_page)

    def post_message(self, conversation_sid: str, body: str, attributes: Mapping[str, Any]) -> None:
        """POST /v1/Conversations/{CH}/Messages as ``system``, with ``X-Twilio-Webhook-Enabled: false``."""
        messages = self.client.conversations.v1.conversations(conversation_sid).messages
        self._call("messages.create", lambda: messages.create(
            author="system", body=body, attributes=json.dumps(attributes), x_twilio_webhook_enabled="false"))

    def list_conversation_participants(self, conversation_sid: str) -> list[ConversationParticipant]:
        """GET /v1/Conversations/{CH}/Participants."""
        participants = self.client.conversations.v1.conversations(conversation_sid).participants
        records = self._call("conversation_participants.list", lambda: participants.list())
        return [ConversationParticipant(r.sid, r.identity, (r.messaging_binding or {}).get("address"),
                                        _json_object(r.attributes)) for r in records]

    # IAM

    def validate_flex_token(self, token: str) -> FlexToken:
        """POST https://iam.twilio.com/v1/Accounts/{AC}/Tokens/validate: who holds this Flex token.

        A token is good only when IAM answers 200 with ``valid`` true. IAM may refuse a bad or
        expired token with ``valid`` false or with a 4xx (docs/twilio-behaviour.md; Flex's own
        validator decides on ``valid`` alone, whatever the status): both are an invalid token. A
        429, a 5xx or no answer raises RetryableTwilioError.
        """
        response = self._ask_iam(token)
        answer = _json_object(response.text)
        if response.status_code >= 400:
            # A refusal that is not about the token is more likely Baton's own credentials, which
            # would turn every agent away: say so where an operator looks.
            code = answer.get("code")
            if code not in ACCESS_TOKEN_ERROR_CODES:
                log.warning("IAM answered %s (code %s) for a Flex token: the token is refused; if every agent "
                            "is refused, check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN", response.status_code, code)
            return FlexToken(valid=False)
        if not answer.get("valid"):
            return FlexToken(valid=False)
        expiration = answer.get("expiration")
        return FlexToken(
            valid=True,
            worker_sid=answer.get("worker_sid"),
            identity=answer.get("identity"),
            roles=tuple(answer.get("roles") or ()),
            expires_at=datetime.fromisoformat(expiration.replace("Z", "+00:00")) if expiration else None,
        )

    def iam_answer(self, token: str) -> tuple[int, bool]:
        """IAM's own answer to ``token`` (the HTTP status, and ``valid``), before ``validate_flex_token`` maps
        it: ``baton live-check`` tells apart the two ways IAM may refuse a bad token."""
        response = self._ask_iam(token)
        return response.status_code, bool(_json_object(response.text).get("valid"))

    def _ask_iam(self, token: str) -> Response:
        """POST …/Tokens/validate; any answer but a 429 or a 5xx is returned (those, and no answer, raise
        RetryableTwilioError)."""
        url = f"https://iam.twilio.com/v1/Accounts/{self.client.account_sid}/Tokens/validate"

        def ask() -> Response:
            response = self.client.request("POST", url, data=json.dumps({"token": token}),
                                           headers={"Content-Type": "application/json"})
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableTwilioError("tokens.validate", "IAM unavailable", response.status_code,
                                           retry_after=_retry_after(response))
            return response

        # Tried again as a read, whatever its method (IAM_RETRY).
        return self._call("tokens.validate", ask)

    # helpers

    @staticmethod
    def _task_snapshot(answer) -> TaskSnapshot:
        task = answer.data
        return TaskSnapshot(task.sid, _json_object(task.attributes), task.assignment_status, task.task_queue_sid,
                            task.workflow_sid, task.task_channel_unique_name, answer.headers.get("ETag"))

    @staticmethod
    def _invite(record) -> Invite:
        properties = (record.routing or {}).get("properties") or {}
        # JSON text, as a list of invites shows it, or an object: both are read.
        return Invite(record.sid, properties.get("sid"), _json_object(properties.get("attributes")))

    # Operator set-up (``baton setup`` and ``baton doctor``): plain dicts of the fields they read.

    def fetch_workspace(self) -> dict[str, Any]:
        """GET /v1/Workspaces/{WS}: ``sid``, ``friendly_name``, ``event_callback_url``, ``events_filter``."""
        record = self._call("workspaces.fetch", lambda: self._workspace.fetch())
        return {"sid": record.sid, "friendly_name": record.friendly_name,
                "event_callback_url": record.event_callback_url, "events_filter": record.events_filter}

    def update_workspace_events(self, event_callback_url: str, events_filter: str) -> None:
        """POST /v1/Workspaces/{WS} with ``EventCallbackUrl`` and ``EventsFilter`` (comma-separated event types)."""
        self._call("workspaces.update", lambda: self._workspace.update(
            event_callback_url=event_callback_url, events_filter=events_filter))

    def list_task_queues(self) -> list[dict[str, Any]]:
        """GET /v1/Workspaces/{WS}/TaskQueues (all pages): ``sid``, ``friendly_name``, ``target_workers``,
        ``max_reserved_workers``."""
        records = self._call("task_queues.list", lambda: self._workspace.task_queues.list())
        return [{"sid": r.sid, "friendly_name": r.friendly_name, "target_workers": r.target_workers,
                 "max_reserved_workers": r.max_reserved_workers} for r in records]

    def create_task_queue(self, friendly_name: str, target_workers: str,
                          max_reserved_workers: int | None = None) -> dict[str, Any]:
        """POST /v1/Workspaces/{WS}/TaskQueues with ``FriendlyName``, ``TargetWorkers`` and, when given,
        ``MaxReservedWorkers`` (Twilio's default is 1)."""
        extra = {} if max_reserved_workers is None else {"max_reserved_workers": max_reserved_workers}
        record = self._call("task_queues.create", lambda: self._workspace.task_queues.create(
            friendly_name=friendly_name, target_workers=target_workers, **extra))
        return {"sid": record.sid, "friendly_name": record.friendly_name, "target_workers": record.target_workers}

    def fetch_workflow(self, workflow_sid: str) -> dict[str, Any]:
        """GET /v1/Workspaces/{WS}/Workflows/{WW}: ``sid``, ``friendly_name``, ``configuration`` (JSON text as
        stored) and ``task_reservation_timeout``."""
        record = self._call("workflows.fetch", lambda: self._workspace.workflows(workflow_sid).fetch())
        return {"sid": record.sid, "friendly_name": record.friendly_name, "configuration": record.configuration,
                "task_reservation_timeout": record.task_reservation_timeout}

    def update_workflow(self, workflow_sid: str, configuration: Mapping[str, Any],
                        task_reservation_timeout: int) -> None:
        """POST /v1/Workspaces/{WS}/Workflows/{WW} with ``Configuration`` and ``TaskReservationTimeout``."""
        self._call("workflows.update", lambda: self._workspace.workflows(workflow_sid).update(
            configuration=json.dumps(configuration), task_reservation_timeout=task_reservation_timeout))

    def fetch_conversations_webhook(self) -> dict[str, Any]:
        """GET https://conversations.twilio.com/v1/Configuration/Webhooks, the account's global webhooks:
        ``post_webhook_url``, ``pre_webhook_url``, ``filters``, ``method``, ``target``."""
        record = self._call("conversations_webhook.fetch",
                            lambda: self.client.conversations.v1.configuration.webhooks().fetch())
        return {"post_webhook_url": record.post_webhook_url, "pre_webhook_url": record.pre_webhook_url,
                "filters": list(record.filters or ()), "method": record.method, "target": record.target}

    def update_conversations_webhook(self, post_webhook_url: str, filters: list[str], method: str,
                                     target: str) -> None:
        """POST https://conversations.twilio.com/v1/Configuration/Webhooks with ``PostWebhookUrl``, ``Filters``
        (one form value per event), ``Method`` and ``Target``; the pre-event URL is left alone.

        The filters apply to the pre-event webhook too, so callers keep the pre-action events already there.
        """
        self._call("conversations_webhook.update", lambda: self.client.conversations.v1.configuration.webhooks().update(
            post_webhook_url=post_webhook_url, filters=filters, method=method, target=target))

    def fetch_default_conversation_service_sid(self) -> str | None:
        """GET https://conversations.twilio.com/v1/Configuration: the account's default Conversations service
        (``IS…``), the service of every conversation ``/v1/Conversations`` reaches; None when there is none."""
        record = self._call("conversations_configuration.fetch",
                            lambda: self.client.conversations.v1.configuration().fetch())
        return record.default_chat_service_sid

    def fetch_service_webhook(self, service_sid: str) -> dict[str, Any]:
        """GET https://conversations.twilio.com/v1/Services/{IS}/Configuration/Webhooks, the service's own webhooks:
        ``post_webhook_url``, ``pre_webhook_url``, ``filters``, ``method``."""
        record = self._call("service_webhook.fetch",
                            lambda: self.client.conversations.v1.services(service_sid).configuration.webhooks().fetch())
        return {"post_webhook_url": record.post_webhook_url, "pre_webhook_url": record.pre_webhook_url,
                "filters": list(record.filters or ()), "method": record.method}

    def update_service_webhook(self, service_sid: str, post_webhook_url: str, filters: list[str], method: str) -> None:
        """POST https://conversations.twilio.com/v1/Services/{IS}/Configuration/Webhooks with ``PostWebhookUrl``,
        ``Filters`` (which apply to the service's pre-event webhook too) and ``Method``; the pre-event URL is left
        alone."""
        webhooks = self.client.conversations.v1.services(service_sid).configuration.webhooks()
        self._call("service_webhook.update", lambda: webhooks.update(
            post_webhook_url=post_webhook_url, filters=filters, method=method))

    # Event Streams (``baton setup --events streams`` and ``baton doctor``): Baton's webhook sink and its subscription.

    def list_sinks(self) -> list[dict[str, Any]]:
        """GET https://events.twilio.com/v1/Sinks (all pages): ``sid``, ``description``, ``sink_type``, ``status``,
        ``sink_configuration`` (a dict: a webhook's ``destination``, ``method``, ``batch_events``)."""
        records = self._call("sinks.list", lambda: self.client.events.v1.sinks.list())
        return [self._sink(record) for record in records]

    def create_sink(self, description: str, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v1/Sinks with ``SinkType=webhook``, ``Description`` and ``SinkConfiguration`` (JSON)."""
        record = self._call("sinks.create", lambda: self.client.events.v1.sinks.create(
            description=description, sink_configuration=dict(configuration), sink_type="webhook"))
        return self._sink(record)

    def fetch_sink(self, sink_sid: str) -> dict[str, Any]:
        """GET /v1/Sinks/{DG}."""
        return self._sink(self._call("sinks.fetch", lambda: self.client.events.v1.sinks(sink_sid).fetch()))

    def delete_sink(self, sink_sid: str) -> None:
        """DELETE /v1/Sinks/{DG} (its subscriptions deleted first)."""
        self._call("sinks.delete", lambda: self.client.events.v1.sinks(sink_sid).delete())

    def test_sink(self, sink_sid: str) -> str | None:
        """POST /v1/Sinks/{DG}/Test: Twilio sends the sink a test event; its ``result``."""
        record = self._call("sinks.test", lambda: self.client.events.v1.sinks(sink_sid).sink_test.create())
        return record.result

    def validate_sink(self, sink_sid: str, test_id: str) -> str | None:
        """POST /v1/Sinks/{DG}/Validate with ``TestId``, the id of a test event the sink received; its ``result``."""
        record = self._call("sinks.validate", lambda: self.client.events.v1.sinks(sink_sid).sink_validate.create(
            test_id=test_id))
        return record.result

    def list_subscriptions(self, sink_sid: str) -> list[dict[str, Any]]:
        """GET /v1/Subscriptions?SinkSid=: ``sid``, ``description``, ``sink_sid``."""
        records = self._call("subscriptions.list", lambda: self.client.events.v1.subscriptions.list(sink_sid=sink_sid))
        return [{"sid": r.sid, "description": r.description, "sink_sid": r.sink_sid} for r in records]

    def create_subscription(self, description: str, sink_sid: str, types: list[str]) -> str:
        """POST /v1/Subscriptions with ``Description``, ``SinkSid`` and one ``Types`` value per type (``{"type"}``
        as JSON: the schema version left to Twilio); its sid."""
        record = self._call("subscriptions.create", lambda: self.client.events.v1.subscriptions.create(
            description=description, sink_sid=sink_sid, types=[{"type": event_type} for event_type in types]))
        return record.sid

    def delete_subscription(self, subscription_sid: str) -> None:
        """DELETE /v1/Subscriptions/{DF}."""
        self._call("subscriptions.delete", lambda: self.client.events.v1.subscriptions(subscription_sid).delete())

    def list_subscribed_events(self, subscription_sid: str) -> dict[str, int | None]:
        """GET /v1/Subscriptions/{DF}/SubscribedEvents: each type and its schema version."""
        events = self.client.events.v1.subscriptions(subscription_sid).subscribed_events
        records = self._call("subscribed_events.list", lambda: events.list())
        return {r.type: r.schema_version for r in records}

    def add_subscribed_event(self, subscription_sid: str, event_type: str) -> None:
        """POST /v1/Subscriptions/{DF}/SubscribedEvents with ``Type``."""
        events = self.client.events.v1.subscriptions(subscription_sid).subscribed_events
        self._call("subscribed_events.create", lambda: events.create(type=event_type))

    def remove_subscribed_event(self, subscription_sid: str, event_type: str) -> None:
        """DELETE /v1/Subscriptions/{DF}/SubscribedEvents/{Type}."""
        events = self.client.events.v1.subscriptions(subscription_sid).subscribed_events
        self._call("subscribed_events.delete", lambda: events(event_type).delete())

    @staticmethod
    def _sink(record) -> dict[str, Any]:
        return {"sid": record.sid, "description": record.description, "sink_type": record.sink_type,
                "status": record.status, "sink_configuration": _json_object(record.sink_configuration)}

    # ``baton live-check``: the temporary objects it creates on a real account, and what it reads to check them.

    def list_worker_channels(self, worker_sid: str) -> list[dict[str, Any]]:
        """GET /v1/Workspaces/{WS}/Workers/{WK}/Channels: ``task_channel_unique_name``, ``available``,
        ``available_capacity_percentage``."""
        records = self._call("worker_channels.list", lambda: self._workspace.workers(worker_sid).worker_channels.list())
        return [{"task_channel_unique_name": r.task_channel_unique_name, "available": bool(r.available),
                 "available_capacity_percentage": r.available_capacity_percentage or 0} for r in records]

    def list_queue_workers(self, queue_sid: str) -> list[str]:
        """GET /v1/Workspaces/{WS}/Workers?TaskQueueSid=…: the sids of the workers the queue admits."""
        records = self._call("workers.list", lambda: self._workspace.workers.list(task_queue_sid=queue_sid))
        return [record.sid for record in records]

    def delete_task_queue(self, queue_sid: str) -> None:
        """DELETE /v1/Workspaces/{WS}/TaskQueues/{WQ}."""
        self._call("task_queues.delete", lambda: self._workspace.task_queues(queue_sid).delete())

    def create_workflow(self, friendly_name: str, configuration: Mapping[str, Any],
                        task_reservation_timeout: int) -> str:
        """POST /v1/Workspaces/{WS}/Workflows with ``FriendlyName``, ``Configuration`` and
        ``TaskReservationTimeout``; returns its sid."""
        record = self._call("workflows.create", lambda: self._workspace.workflows.create(
            friendly_name=friendly_name, configuration=json.dumps(configuration),
            task_reservation_timeout=task_reservation_timeout))
        return record.sid

    def delete_workflow(self, workflow_sid: str) -> None:
        """DELETE /v1/Workspaces/{WS}/Workflows/{WW}."""
        self._call("workflows.delete", lambda: self._workspace.workflows(workflow_sid).delete())

    def list_open_tasks(self, evaluate_task_attributes: str) -> list[dict[str, Any]]:
        """GET /v1/Workspaces/{WS}/Tasks with ``EvaluateTaskAttributes`` and ``AssignmentStatus`` pending, reserved,
        assigned and wrapping: ``sid``, ``assignment_status``."""
        records = self._call("tasks.list", lambda: self._workspace.tasks.list(
            evaluate_task_attributes=evaluate_task_attributes,
            assignment_status=["pending", "reserved", "assigned", "wrapping"]))
        return [{"sid": r.sid, "assignment_status": r.assignment_status} for r in records]

    def create_conversation(self, friendly_name: str, attributes: Mapping[str, Any]) -> str:
        """POST https://conversations.twilio.com/v1/Conversations with ``FriendlyName`` and ``Attributes``; its sid."""
        record = self._call("conversations.create", lambda: self.client.conversations.v1.conversations.create(
            friendly_name=friendly_name, attributes=json.dumps(attributes)))
        return record.sid

    def add_chat_participant(self, conversation_sid: str, identity: str) -> str:
        """POST /v1/Conversations/{CH}/Participants with ``Identity`` (a chat participant); its sid."""
        participants = self.client.conversations.v1.conversations(conversation_sid).participants
        record = self._call("conversation_participants.create", lambda: participants.create(identity=identity))
        return record.sid

    def delete_conversation(self, conversation_sid: str) -> None:
        """DELETE /v1/Conversations/{CH}, with everything in it."""
        self._call("conversations.delete",
                   lambda: self.client.conversations.v1.conversations(conversation_sid).delete())

    def create_interaction(self, conversation_sid: str, channel_type: str,
                           routing_properties: Mapping[str, Any]) -> CreatedInteraction:
        """POST /v1/Interactions on an existing conversation (``properties.media_channel_sid``), its task routed by
        ``routing_properties`` (``attributes`` as a JSON object, as in ``create_invite``)."""
        channel = {"type": channel_type, "initiated_by": "customer",
                   "properties": {"media_channel_sid": conversation_sid}}
        properties = dict(routing_properties)
        record = self._call("interactions.create", lambda: self.client.flex_api.v1.interaction.create(
            channel=channel, routing={"properties": properties}))
        task_properties = (record.routing or {}).get("properties") or {}
        return CreatedInteraction(record.sid, (record.channel or {}).get("sid"), task_properties.get("sid"))

    def close_interaction_channel(self, interaction_sid: str, channel_sid: str) -> None:
        """POST /v1/Interactions/{KD}/Channels/{UO} with ``Status=closed`` and ``Routing`` ``{"status": "closed"}``:
        the channel closes, its tasks not yet accepted are canceled and the accepted ones completed (without
        ``Routing`` they would be left wrapping up)."""
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        self._call("interaction_channels.update", lambda: channel.update(status="closed",
                                                                         routing={"status": "closed"}))

    def invite_attribute_forms(self, interaction_sid: str, channel_sid: str) -> dict[str, str]:
        """GET /v1/Interactions/{KD}/Channels/{UO}/Invites: for each invite, how the list shows its task's
        attributes, ``"object"`` or ``"string"`` (``list_invites`` reads both the same)."""
        channel = self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)
        records = self._call("invites.list", lambda: channel.invites.list())
        return {r.sid: "object" if isinstance(((r.routing or {}).get("properties") or {}).get("attributes"), dict)
                else "string" for r in records}
