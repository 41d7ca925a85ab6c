"""Property-based fuzzing of every endpoint: arbitrary bodies, headers, query strings and form fields never make
a 5xx or an unhandled exception, and a refused request changes nothing in Redis (state or Celery's queue).

Requests are drawn partly at random and partly from the scenario's real sids, tokens and signatures, so
that they get past authentication, signature checks and validation often enough to reach every branch.
Redis keeps the IAM answers cached by token hash, the rate-limit counters and TaskRouter's friendly names
whatever the answer: those are bookkeeping of who called and caches of Twilio's, not state a request can
change, and are left out of the comparison.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.edge import ADMIN_TOKEN, PUBLIC_BASE_URL
from twilio.request_validator import RequestValidator

from app import auth
from baton.domain.settings import Settings
from baton.domain.twilio_events import TRANSFER_EVENTS

# Every route of the app and its methods (HEAD and OPTIONS are Flask's own); path parameters in braces.
ENDPOINTS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/transfers"),
    ("GET", "/v1/transfers"),
    ("GET", "/v1/transfers/{transfer_id}"),
    ("GET", "/v1/transfer-options"),
    ("GET", "/v1/names"),
    ("POST", "/v1/transfers/{transfer_id}/cancel"),
    ("POST", "/v1/transfers/{transfer_id}/leave"),
    ("GET", "/v1/settings"),
    ("PATCH", "/v1/settings"),
    ("POST", "/webhooks/taskrouter"),
    ("POST", "/webhooks/conversations"),
    ("POST", "/webhooks/event-streams"),
    ("GET", "/admin/"),
    ("GET", "/admin/sign-in"),
    ("POST", "/admin/sign-in"),
    ("POST", "/admin/sign-out"),
    ("GET", "/admin/settings"),
    ("POST", "/admin/settings"),
    ("GET", "/admin/transfers.json"),
    ("GET", "/admin/transfers/{transfer_id}"),
    ("GET", "/admin/transfers/{transfer_id}.json"),
    ("GET", "/admin/static/{filename}"),
    ("GET", "/static/{filename}"),
]
EXAMPLES = 150
# Bookkeeping that any request, accepted or not, may write (see the module's docstring).
BOOKKEEPING = ("baton:token:", "baton:ratelimit:", "baton:name:", "baton:workflows")
WEBHOOK_FIELDS = ["EventType", "Sid", "TaskSid", "TaskAttributes", "ReservationSid", "WorkerSid", "TaskQueueSid",
                  "TaskCanceledReason", "TimestampMs", "ConversationSid", "StateTo", "ParticipantSid", "StateUpdated",
                  "DateUpdated"]
EVENT_TYPES = [*sorted(TRANSFER_EVENTS), "onConversationStateUpdated", "onParticipantRemoved", "onMessageAdded"]

latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
header_text = st.text(latin1, max_size=60)
short_text = st.text(max_size=40)
# Nested past the JSON parser's recursion limit: RecursionError is no ValueError, so no parser error handler sees it.
# Hypothesis raises the recursion limit by 2000 while it runs a test, hence depths well past the usual 1000.
deep_json = st.integers(3000, 30000).map(lambda depth: "[" * depth + "]" * depth)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def route_pattern(rule: str) -> str:
    """A Werkzeug rule as ENDPOINTS writes it: ``/v1/transfers/<transfer_id>`` -> ``/v1/transfers/{transfer_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@pytest.fixture
def fuzz_app(app, client, scenario, monkeypatch):
    """The app with exceptions propagated to the test, no rate limit in the way, and one transfer in progress."""
    app.config["PROPAGATE_EXCEPTIONS"] = True
    monkeypatch.setattr(auth, "RATE_LIMIT_REQUESTS", 10**9)
    response = client.post("/v1/transfers", headers={"Authorization": f"Bearer {scenario.tokens['alice']}"},
                           json={"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"]})
    assert response.status_code == 202
    app.fuzz_transfer_id = response.get_json()["id"]
    return app


def state(store) -> dict[str, bytes]:
    """Every key of the database but bookkeeping, with its serialized value (Celery's queue included)."""
    keys = [key for key in store.redis.keys("*") if not key.startswith(BOOKKEEPING)]
    with store.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))


def test_every_route_is_fuzzed(app):
    """ENDPOINTS lists every route and method of the app, so a new endpoint is fuzzed as soon as it exists."""
    routes = {(method, route_pattern(rule.rule)) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == set(ENDPOINTS)


@dataclass(frozen=True)
class Known:
    """The real values mixed into the drawn requests: the scenario's sids and tokens, the transfer in progress."""

    sids: tuple[str, ...]
    tokens: tuple[str, ...]
    transfer_id: str
    conversation_sid: str


@functools.cache
def strategies(known: Known) -> dict[str, st.SearchStrategy]:
    """The parts of a request, built once: building hypothesis strategies costs more than drawing from them."""
    sid = st.sampled_from(known.sids) | st.from_regex(r"\A(WT|WK|WQ|WW)[0-9a-fA-F]{32}\Z") | short_text
    transfer_ids = st.sampled_from([known.transfer_id]) | short_text
    real_token = st.sampled_from([f"Bearer {token}" for token in known.tokens])
    json_object = st.fixed_dictionaries({}, optional={
        "task_sid": sid | json_values, "to": sid | json_values, "mode": st.sampled_from(["cold", "warm"]),
        "notes": st.none() | st.text(max_size=1100) | json_values, "summary": st.booleans() | json_values,
        **{name: json_values for name in Settings().to_dict()},
        **{name: short_text | st.sampled_from(EVENT_TYPES) for name in WEBHOOK_FIELDS},
    })
    form_value = (short_text | st.sampled_from([*EVENT_TYPES, *known.sids, "closed", known.conversation_sid])
                  | st.builds(lambda i: json.dumps({"transfer": {"id": i}}), transfer_ids) | deep_json)
    return {
        "path_value": st.sampled_from([known.transfer_id, "admin.css", "admin.js"]) | st.text(min_size=1, max_size=40),
        "query": st.dictionaries(st.sampled_from(["task_sid", "status", "next", "sid"]) | short_text,
                                 sid | st.sampled_from(["in_progress", "failed", "/admin/settings"]), max_size=3),
        "body_kind": st.sampled_from(["json", "form", "raw", "deep", "none"]),
        "json": json_object | json_values,
        "form": st.dictionaries(st.sampled_from([*WEBHOOK_FIELDS, "token", "csrf_token", "max_attempts"])
                                | short_text, form_value, max_size=8),
        "raw": st.binary(max_size=300),
        "deep": deep_json,
        # A real token two times in five, so that most requests get past authentication.
        "authorization": st.one_of(real_token, real_token, st.none(), header_text,
                                   st.builds("Bearer {}".format, header_text)),
        "header": st.none() | header_text,
        "content_type": st.none() | st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                     "text/plain", "multipart/form-data; boundary=x"]) | header_text,
        "sign": st.booleans(),
    }


@pytest.mark.parametrize("method, route", ENDPOINTS)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_request_is_a_server_error_or_changes_state_when_refused(fuzz_app, scenario, store, method, route, data):
    """An arbitrary request is never answered 5xx nor raises, and when it is refused (4xx) Redis is unchanged."""
    known = Known((scenario.conversation.task_sid, *scenario.agents.values(), *scenario.queues.values(),
                   scenario.transfer_workflow_sid), (*scenario.tokens.values(), ADMIN_TOKEN), fuzz_app.fuzz_transfer_id,
                  scenario.conversation.conversation_sid)
    parts = strategies(known)
    draw = data.draw
    path = route.format(**{name: quote(draw(parts["path_value"]), safe="") for name in re.findall(r"{(\w+)}", route)})
    query = draw(parts["query"])
    body_kind = draw(parts["body_kind"])
    body: bytes | dict[str, str] | None = {
        "json": lambda: json.dumps(draw(parts["json"])).encode(), "form": lambda: draw(parts["form"]),
        "raw": lambda: draw(parts["raw"]), "deep": lambda: draw(parts["deep"]).encode(), "none": lambda: None,
    }[body_kind]()

    headers = {"Authorization": draw(parts["authorization"]), "Idempotency-Key": draw(parts["header"]),
               "X-Twilio-Signature": draw(parts["header"])}
    if route.startswith("/webhooks/") and draw(parts["sign"]):
        # Signed as Twilio signs: the form's fields, or the raw body through bodySHA256.
        validator = RequestValidator(scenario.auth_token)
        if isinstance(body, dict):
            signed_path = path + ("?" + urlencode(query) if query else "")
            headers["X-Twilio-Signature"] = validator.compute_signature(PUBLIC_BASE_URL + signed_path, body)
        else:
            query["bodySHA256"] = hashlib.sha256(body or b"").hexdigest()
            signed_path = path + "?" + urlencode(query)
            headers["X-Twilio-Signature"] = validator.compute_signature(PUBLIC_BASE_URL + signed_path, {})
    content_type = draw(parts["content_type"])

    # Encoded here, as signed: the test client would encode a dict with other safe characters.
    kwargs = {"headers": {name: value for name, value in headers.items() if value is not None},
              "query_string": urlencode(query)}
    if body is not None:
        kwargs["data"] = body
        if body_kind in ("json", "deep") and content_type is None:
            content_type = "application/json"
    if content_type is not None and not isinstance(body, dict):
        kwargs["content_type"] = content_type

    before = state(store)
    response = fuzz_app.test_client(use_cookies=False).open(path, method=method, **kwargs)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert state(store) == before, response.get_data(as_text=True)
