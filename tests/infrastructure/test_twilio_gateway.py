"""The gateway's transport: URL rewriting, timeouts, connection reuse and error classification.

A scripted loopback HTTP server stands in for Twilio so each failure mode can be produced exactly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests

from baton.infrastructure.config import Config
from baton.infrastructure.twilio_gateway import (
    PermanentTwilioError,
    RetryableTwilioError,
    RoutingHttpClient,
    TwilioGateway,
    build_twilio_client,
)

WORKSPACE = "WS" + "0" * 32
TASK = "WT" + "1" * 32
TASK_BODY = {"sid": TASK, "attributes": '{"a": 1}', "assignment_status": "pending", "task_queue_sid": None,
             "workflow_sid": None, "task_channel_unique_name": "chat"}


# A scripted answer that is none: the connection is closed once the request is read (it may have been applied).
DROP = (None, None, {}, 0)


class ScriptedTwilio(ThreadingHTTPServer):
    """Answers each request with the next scripted (status, body, headers, delay), or ``DROP``s it; records what it
    saw.

    seen: (method, path, client address) of each request; bodies: each request's body, as text; arrived: when each
    request was read (``time.monotonic``).
    """

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int | None, object, dict, float]] = []
        self.seen: list[tuple[str, str, tuple[str, int]]] = []
        self.bodies: list[str] = []
        self.arrived: list[float] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(self.rfile.read(length).decode())
        self.server.seen.append((self.command, self.path, self.client_address))
        self.server.arrived.append(time.monotonic())
        status, body, headers, delay = self.server.script.pop(0) if self.server.script else (200, TASK_BODY, {}, 0)
        if status is None:
            self.close_connection = True
            return
        time.sleep(delay)
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer


@pytest.fixture
def twilio():
    server = ScriptedTwilio()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def gateway(twilio):
    config = Config(twilio_account_sid="AC" + "a" * 32, twilio_auth_token="token", twilio_workspace_sid=WORKSPACE,
                    transfer_workflow_sid="WW" + "b" * 32, public_base_url="https://baton.test",
                    twilio_api_base=twilio.url)
    return TwilioGateway.from_config(config)


def test_routes_twilio_hosts_to_the_api_base():
    """https://{product}.twilio.com/{path} becomes {TWILIO_API_BASE}/{product}/{path}; other URLs are left alone."""
    client = RoutingHttpClient("http://127.0.0.1:9/")
    assert client.route("https://flex-api.twilio.com/v1/Interactions?x=1") == "http://127.0.0.1:9/flex-api/v1/Interactions?x=1"
    assert client.route("https://taskrouter.twilio.com/v1/Workspaces") == "http://127.0.0.1:9/taskrouter/v1/Workspaces"
    assert client.route("https://example.com/v1") == "https://example.com/v1"
    assert RoutingHttpClient(None).route("https://iam.twilio.com/v1/x") == "https://iam.twilio.com/v1/x"


def test_fetch_task_reads_the_etag_and_reuses_one_connection(gateway, twilio):
    """Successive calls travel on one keep-alive connection, and the task's ETag is returned."""
    twilio.script = [(200, TASK_BODY, {"ETag": "7"}, 0), (200, TASK_BODY, {"ETag": "8"}, 0)]
    first, second = gateway.fetch_task(TASK), gateway.fetch_task(TASK)
    assert (first.etag, second.etag, first.attributes) == ("7", "8", {"a": 1})
    assert [path for _, path, _ in twilio.seen] == [f"/taskrouter/v1/Workspaces/{WORKSPACE}/Tasks/{TASK}"] * 2
    assert len({client for _, _, client in twilio.seen}) == 1


CONVERSATION = "CH" + "2" * 32
MESSAGES_URL = f"https://conversations.twilio.com/v1/Conversations/{CONVERSATION}/Messages"
SERVER_ERROR = (503, {"code": 20503, "message": "Unavailable", "status": 503}, {}, 0)


def messages_page(number, sids, next_url):
    """An answer of GET …/Messages: one page of messages with the sids ``sids``, and the next page's URL."""
    messages = [{"sid": sid, "index": i, "author": "a", "body": "b", "participant_sid": None,
                 "date_created": "2026-01-01T00:00:00Z"} for i, sid in enumerate(sids)]
    return (200, {"messages": messages, "meta": {"key": "messages", "page": number, "page_size": 2,
                                                   "next_page_url": next_url, "url": MESSAGES_URL}}, {}, 0)


def test_paging_follows_next_page_url_through_the_rewrite(gateway, twilio):
    """A next_page_url on Twilio's real host is fetched from the API base, never from twilio.com."""
    conversation, base, page = CONVERSATION, MESSAGES_URL, messages_page
    twilio.script = [page(0, ["IM1", "IM2"], f"{base}?Order=desc&PageSize=2&Page=1&PageToken=PT1"),
                     page(1, ["IM3"], None)]
    assert [m.sid for m in gateway.recent_messages(conversation, page_size=2)] == ["IM1", "IM2", "IM3"]
    assert twilio.seen[1][1].startswith(f"/conversations/v1/Conversations/{conversation}/Messages?")
    assert "PageToken=PT1" in twilio.seen[1][1]


def test_rate_limit_is_retryable_with_retry_after(gateway, twilio):
    """A 429 is retryable and carries Twilio's Retry-After."""
    twilio.script = [(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "3"}, 0)]
    with pytest.raises(RetryableTwilioError) as caught:
        gateway.fetch_task(TASK)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, 20429, 3.0)
    assert caught.value.endpoint == "tasks.fetch"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(gateway, twilio, status):
    """A 5xx is retryable; a write is not tried again by the gateway."""
    twilio.script = [(status, {"code": 20500, "message": "Internal", "status": status}, {}, 0)]
    with pytest.raises(RetryableTwilioError) as caught:
        gateway.update_task_attributes(TASK, {"x": 1}, etag="3")
    assert caught.value.status == status
    assert len(twilio.seen) == 1


def test_reads_are_tried_three_times_on_server_errors(gateway, twilio):
    """A read meeting 5xx answers is tried again at once, up to three times in all."""
    error = (503, {"code": 20503, "message": "Unavailable", "status": 503}, {}, 0)
    twilio.script = [error, error, (200, TASK_BODY, {"ETag": "4"}, 0)]
    assert gateway.fetch_task(TASK).etag == "4"
    twilio.script = [error, error, error]
    with pytest.raises(RetryableTwilioError):
        gateway.fetch_task(TASK)
    assert len(twilio.seen) == 6


def test_a_rate_limited_read_is_left_to_the_caller(gateway, twilio):
    """A 429 on a read is not retried by the gateway: the caller honours its Retry-After."""
    twilio.script = [(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "2"}, 0)]
    with pytest.raises(RetryableTwilioError):
        gateway.fetch_task(TASK)
    assert len(twilio.seen) == 1


def test_a_read_is_tried_again_at_once_then_a_quarter_second_later(gateway, twilio):
    """After a read's first server error the second try follows at once; after the second, the third waits 0.25 s."""
    twilio.script = [SERVER_ERROR, SERVER_ERROR, (200, TASK_BODY, {"ETag": "4"}, 0)]
    assert gateway.fetch_task(TASK).etag == "4"
    first, second, third = twilio.arrived
    assert second - first < 0.15
    assert 0.25 <= third - second < 0.75


def test_a_server_errors_retry_after_is_not_waited_on_by_the_gateway_but_reaches_the_caller(gateway, twilio):
    """A read meeting 503s with Retry-After: 30 is tried three times within a second, and the caller gets the last
    answer's status, Twilio code and Retry-After, to honour it without blocking a worker."""
    twilio.script = [(503, {"code": 20503, "message": "Unavailable", "status": 503}, {"Retry-After": "30"}, 0)] * 3
    started = time.monotonic()
    with pytest.raises(RetryableTwilioError) as caught:
        gateway.fetch_task(TASK)
    assert time.monotonic() - started < 1.0
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, 20503, 30.0)
    assert len(twilio.seen) == 3


def test_a_dropped_connection_is_tried_again_for_a_read_and_never_for_a_write(gateway, twilio):
    """A connection closed without an answer (Twilio may have acted) is tried again for a read; for a write it is a
    retryable error without a status, after one try."""
    twilio.script = [DROP, (200, TASK_BODY, {"ETag": "5"}, 0)]
    assert gateway.fetch_task(TASK).etag == "5"
    twilio.script = [DROP]
    with pytest.raises(RetryableTwilioError) as caught:
        gateway.update_task_attributes(TASK, {"x": 1}, etag="3")
    assert caught.value.status is None
    assert [method for method, _, _ in twilio.seen] == ["GET", "GET", "POST"]


@pytest.mark.parametrize(("status", "code"), [(400, 20001), (404, 20404), (412, 20412)])
def test_client_errors_are_permanent_with_twilio_code(gateway, twilio, status, code):
    """A 4xx other than 429 is permanent and keeps Twilio's error code."""
    twilio.script = [(status, {"code": code, "message": "no", "status": status}, {}, 0)]
    with pytest.raises(PermanentTwilioError) as caught:
        gateway.update_task_attributes(TASK, {"x": 1}, etag="3")
    assert (caught.value.status, caught.value.code, caught.value.endpoint) == (status, code, "tasks.update")


def test_read_timeout_is_retryable(twilio):
    """A response slower than the read timeout ends the call as a retryable error instead of hanging."""
    client = build_twilio_client(Config(twilio_account_sid="AC" + "a" * 32, twilio_auth_token="t",
                                        twilio_workspace_sid=WORKSPACE, transfer_workflow_sid="WW" + "b" * 32,
                                        public_base_url="https://b.test", twilio_api_base=twilio.url))
    client.http_client.request_timeout = (1.0, 0.2)
    twilio.script = [(200, TASK_BODY, {}, 1.0)]
    started = time.monotonic()
    with pytest.raises(RetryableTwilioError) as caught:
        TwilioGateway(client, WORKSPACE).update_task_attributes(TASK, {"x": 1}, etag="3")
    assert time.monotonic() - started < 0.9
    assert caught.value.status is None


def test_connection_refused_is_retryable(gateway, twilio):
    """Nothing listening is a retryable connection error."""
    twilio.shutdown()
    twilio.server_close()
    with pytest.raises(RetryableTwilioError):
        gateway.fetch_task(TASK)


# Flex invites

INTERACTION, CHANNEL, INVITE = "KD" + "2" * 32, "UO" + "3" * 32, "KG" + "4" * 32


def invite_answer(attributes) -> dict:
    return {"sid": INVITE, "interaction_sid": INTERACTION, "channel_sid": CHANNEL,
            "routing": {"reservation": None, "properties": {"sid": TASK, "attributes": attributes}}}


def test_an_invite_sends_its_attributes_as_a_json_object(gateway, twilio):
    """The task attributes travel as an object inside the JSON-encoded Routing, never as a string in it."""
    attributes = {"transferTargetType": "queue", "transfer": {"id": "tr_1", "notes": "Vérifier"}}
    twilio.script = [(201, invite_answer(json.dumps(attributes)), {}, 0)]

    gateway.create_invite(INTERACTION, CHANNEL, {"workspace_sid": WORKSPACE, "attributes": attributes})

    (routing,) = parse_qs(twilio.bodies[0])["Routing"]
    assert json.loads(routing) == {"properties": {"workspace_sid": WORKSPACE, "attributes": attributes}}


@pytest.mark.parametrize("shown", [json.dumps, lambda attributes: attributes], ids=["json text", "object"])
def test_invite_attributes_are_read_as_json_text_or_object(gateway, twilio, shown):
    """Flex's answer may show the task's attributes as JSON text or as an object: both read the same."""
    attributes = {"transfer": {"id": "tr_1"}, "flexChannelInviteSid": INVITE}
    twilio.script = [(200, {"invites": [invite_answer(shown(attributes))],
                            "meta": {"key": "invites", "next_page_url": None}}, {}, 0)]

    (invite,) = gateway.list_invites(INTERACTION, CHANNEL)

    assert (invite.sid, invite.task_sid, invite.task_attributes) == (INVITE, TASK, attributes)


def test_a_page_that_fails_is_read_again_alone(gateway, twilio):
    """A server error on the second page of a list read whole tries that page again, not the list from its start."""
    invites_url = f"https://flex-api.twilio.com/v1/Interactions/{INTERACTION}/Channels/{CHANNEL}/Invites"
    first = {"invites": [invite_answer("{}")], "meta": {"key": "invites", "next_page_url": f"{invites_url}?Page=1"}}
    second = {"invites": [{**invite_answer("{}"), "sid": "KG" + "5" * 32}], "meta": {"key": "invites",
                                                                                    "next_page_url": None}}
    twilio.script = [(200, first, {}, 0), SERVER_ERROR, (200, second, {}, 0)]
    assert [invite.sid for invite in gateway.list_invites(INTERACTION, CHANNEL)] == [INVITE, "KG" + "5" * 32]
    assert ["Page=1" in path for _, path, _ in twilio.seen] == [False, True, True]


# IAM

@pytest.mark.parametrize("answer", [
    (200, {"valid": False, "code": 20101, "message": "Invalid Access Token"}),
    (401, {"code": 20101, "message": "Invalid Access Token", "status": 401}),
    (401, {"code": 20104, "message": "Access Token expired or expiration date invalid", "status": 401}),
    (403, {}),
], ids=["200 valid false", "401 invalid", "401 expired", "403 without a body"])
def test_an_iam_refusal_of_the_token_is_an_invalid_token(gateway, twilio, answer):
    """IAM refusing a token, with valid false or with a 4xx, makes it invalid; nothing is raised."""
    status, body = answer
    twilio.script = [(status, body, {}, 0)]

    assert gateway.validate_flex_token("a-token").valid is False
    assert len(twilio.seen) == 1


def test_an_iam_refusal_not_about_the_token_is_logged_for_the_operator(gateway, twilio, caplog):
    """A 4xx whose code is not an access-token error still refuses the token, with a warning naming the credentials."""
    twilio.script = [(401, {"code": 20003, "message": "Authenticate", "status": 401}, {}, 0)]

    with caplog.at_level(logging.WARNING, logger="baton.infrastructure.twilio_gateway"):
        assert gateway.validate_flex_token("a-token").valid is False

    assert "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in caplog.text and "a-token" not in caplog.text


def test_iam_is_asked_again_after_a_server_error_though_its_method_is_post(gateway, twilio):
    """Validating a token changes nothing: IAM's POST is tried again on a 5xx, as a read is."""
    twilio.script = [SERVER_ERROR, (200, {"valid": True, "worker_sid": "WK" + "1" * 32, "identity": "alice",
                                          "roles": ["agent"], "expiration": "2030-01-01T00:00:00Z"}, {}, 0)]
    assert gateway.validate_flex_token("a-token").worker_sid == "WK" + "1" * 32
    assert [(method, path.split("/")[1]) for method, path, _ in twilio.seen] == [("POST", "iam")] * 2


@pytest.mark.parametrize("status", [429, 503])
def test_iam_unavailable_stays_retryable(gateway, twilio, status):
    """A 429 or a 5xx from IAM says nothing about the token: it is a retryable error, not a refusal."""
    twilio.script = [(status, {"code": 20429 if status == 429 else 20503, "status": status}, {}, 0)] * 3

    with pytest.raises(RetryableTwilioError) as caught:
        gateway.validate_flex_token("a-token")

    assert caught.value.status == status


def test_the_environments_proxy_settings_are_read_once_per_origin_and_still_honoured(monkeypatch):
    """A proxy set in the environment is used as requests would use it; it is read once for each origin, not for
    every request."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("NO_PROXY", "iam.twilio.com")
    reads = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies",
                        lambda url, no_proxy=None: reads.append(url) or real(url, no_proxy=no_proxy))
    session = RoutingHttpClient().session
    for _ in range(3):
        taskrouter = session.merge_environment_settings("https://taskrouter.twilio.com/v1/Workspaces", {}, None, None,
                                                        None)
        iam = session.merge_environment_settings("https://iam.twilio.com/v1/Accounts", {}, None, None, None)
    assert taskrouter["proxies"]["https"] == "http://proxy.example.com:3128"
    assert "https" not in iam["proxies"]
    assert len(reads) == 2
