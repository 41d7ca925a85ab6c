"""Webhook signatures: twilio's RequestValidator against PUBLIC_BASE_URL, JSON bodies signed through
``bodySHA256``, SharedKey signatures refused; and bodies over 64 KiB refused before anything reads them."""

from __future__ import annotations

import hashlib
import io
import json
from urllib.parse import urlencode

import pytest
import twilio.request_validator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.edge import PUBLIC_BASE_URL, bearer, payload
from twilio.request_validator import RequestValidator

from app import MAX_BODY_BYTES
from app.errors import ApiError
from app.ingest import signed_form
from app.webhooks import FORWARDED_FIELDS, signature_matches, signed_fields
from workers.celery_app import TRANSFER_INBOX

TRANSFER_ID = "tr_3f1c0e5a9b7d4c2e8a6f1b0d9c7e5a31"  # in the captured payloads' TaskAttributes
RESERVATION_CREATED = "twilio_events/taskrouter/reservation.created"  # an offer of a transfer's new task


def json_signed(auth_token: str, path: str, body: bytes, query: str = "") -> tuple[str, str]:
    """The path with Twilio's ``bodySHA256`` added to its query, and the X-Twilio-Signature of that URL."""
    separator = "&" if query else "?"
    signed_path = f"{path}{query}{separator}bodySHA256={hashlib.sha256(body).hexdigest()}"
    return signed_path, RequestValidator(auth_token).compute_signature(PUBLIC_BASE_URL + signed_path, {})


@pytest.fixture
def post_json(client, scenario):
    """Post a raw JSON body to a webhook path as Twilio signs one (or with ``body_sent`` in its place)."""
    def post(path: str, body: bytes, query: str = "", body_sent: bytes | None = None):
        signed_path, signature = json_signed(scenario.auth_token, path, body, query)
        return client.post(signed_path, data=body if body_sent is None else body_sent,
                           content_type="application/json", headers={"X-Twilio-Signature": signature})
    return post


def test_a_taskrouter_event_with_a_signed_json_body_is_delivered(post_json, jobs, inbox):
    """A TaskRouter event posted as JSON with bodySHA256 is verified and delivered exactly as its form would be."""
    event = payload(RESERVATION_CREATED)
    response = post_json("/webhooks/taskrouter", json.dumps(event).encode())
    assert response.status_code == 204
    assert [(job.name, job.args) for job in jobs()] == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert inbox(TRANSFER_ID) == [
        {"source": "taskrouter", "fields": {name: event[name] for name in FORWARDED_FIELDS if name in event}}]


def test_a_conversations_event_with_a_signed_json_body_is_acknowledged(post_json):
    """A Conversations event posted as JSON with bodySHA256 (after a query of its own) is a 200 {}."""
    body = json.dumps(payload("twilio_events/conversations/onMessageAdded")).encode()
    response = post_json("/webhooks/conversations", body, query="?env=prod")
    assert response.status_code == 200 and response.get_json() == {}


def test_a_json_body_that_does_not_match_its_hash_is_refused(post_json, jobs):
    """A JSON body changed after Twilio hashed it is a 403, although the URL's signature is right."""
    event = payload(RESERVATION_CREATED)
    tampered = json.dumps({**event, "EventType": "reservation.accepted"}).encode()
    response = post_json("/webhooks/taskrouter", json.dumps(event).encode(), body_sent=tampered)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "invalid_signature"
    assert jobs() == []


def test_a_json_body_signed_for_another_url_is_refused(client, scenario, jobs):
    """A bodySHA256 signature computed for the URL the app sees, not PUBLIC_BASE_URL, is a 403."""
    body = json.dumps(payload(RESERVATION_CREATED)).encode()
    path = f"/webhooks/taskrouter?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(scenario.auth_token).compute_signature("http://localhost" + path, {})
    response = client.post(path, data=body, content_type="application/json", headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403 and jobs() == []


def test_a_json_body_without_a_body_hash_is_refused(client, scenario, jobs):
    """A JSON body is covered by no signature without bodySHA256: even a valid signature of the bare URL is a 403."""
    signature = RequestValidator(scenario.auth_token).compute_signature(PUBLIC_BASE_URL + "/webhooks/taskrouter", {})
    response = client.post("/webhooks/taskrouter", json=payload(RESERVATION_CREATED),
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403 and jobs() == []


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b"[" * 5000 + b"]" * 5000])
def test_a_signed_body_that_is_not_a_json_object_is_refused(post_json, body, jobs):
    """A correctly signed bodySHA256 body that is not a JSON object (or is nested too deeply) is a 400 invalid_json."""
    response = post_json("/webhooks/taskrouter", body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    assert jobs() == []


def test_a_body_that_is_not_utf_8_is_refused_whatever_its_hash(post_json, jobs):
    """Twilio signs a body as text (the validator hashes its UTF-8): bytes that are not UTF-8 are a 403, even
    with their own hash in bodySHA256."""
    response = post_json("/webhooks/taskrouter", b"\xff\xfe")
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "invalid_signature"
    assert jobs() == []


@pytest.mark.parametrize("query", ["?bodySHA256", "?bodySHA256="])
def test_a_json_body_with_an_empty_body_hash_is_refused_not_an_error(client, scenario, query, jobs):
    """A bodySHA256 parameter without a value covers no body: a 403, never the validator reading the body as a form."""
    path = "/webhooks/taskrouter" + query
    signature = RequestValidator(scenario.auth_token).compute_signature(PUBLIC_BASE_URL + path, {})
    response = client.post(path, data=b"{}", content_type="application/json", headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403 and jobs() == []


def test_a_signature_with_characters_beyond_ascii_is_refused_not_an_error(client):
    """An X-Twilio-Signature holding Latin-1 characters is a 403, not a 500 from the comparison."""
    response = client.post("/webhooks/taskrouter", data=payload(RESERVATION_CREATED),
                           headers={"X-Twilio-Signature": "sïgnature=="})
    assert response.status_code == 403


def test_deeply_nested_task_attributes_are_not_an_error(client, scenario, store):
    """A signed event whose TaskAttributes nest too deeply for the JSON parser is an event of no transfer: a 204."""
    event = {**payload(RESERVATION_CREATED), "TaskAttributes": "[" * 5000 + "]" * 5000}
    signature = RequestValidator(scenario.auth_token).compute_signature(PUBLIC_BASE_URL + "/webhooks/taskrouter",
                                                                        event)
    response = client.post("/webhooks/taskrouter", data=event, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 204 and store.redis.dbsize() == 0


def test_twilios_published_test_vector_validates():
    """The request of Twilio's own validator tests validates, with and without the default port."""
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    for url in ("https://mycompany.com/myapp.php?foo=1&bar=2", "https://mycompany.com:443/myapp.php?foo=1&bar=2"):
        assert signature_matches("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not signature_matches("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", params,
                                 "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_signatures_are_compared_by_the_sdk(post_json, monkeypatch):
    """The body hash and both readings of the URL are compared by twilio's ``compare``, which does not stop at
    the first character that differs."""
    compared = []
    real = twilio.request_validator.compare

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(twilio.request_validator, "compare", spy)
    body = json.dumps(payload("twilio_events/conversations/onMessageAdded")).encode()
    assert post_json("/webhooks/conversations", body).status_code == 200
    # The body's hash, then the URL signed without and with its port.
    assert len(compared) == 3 and compared[0][0] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("settings_header", ["key=webhooks_sharedkey_01jr5k3v4m6y8w0z2b4d6f8h0k,algorithm=HMAC_SHA256",
                                             "key=webhooks_sharedkey_01jr5k3v4m6y8w0z2b4d6f8h0k,algorithm=HMAC_SHA1"])
@pytest.mark.parametrize("path", ["/webhooks/taskrouter", "/webhooks/conversations"])
def test_a_request_signed_with_a_shared_key_is_refused_and_says_why(client, scenario, jobs, path, settings_header):
    """A webhook carrying X-Twilio-Webhooks-Signature-Settings is signed with a SharedKey whose secret Baton is
    not given: a 403 naming the header, even beside what would be a valid auth-token signature."""
    form = payload(RESERVATION_CREATED)
    signature = RequestValidator(scenario.auth_token).compute_signature(PUBLIC_BASE_URL + path, form)
    response = client.post(path, data=form, headers={"X-Twilio-Signature": signature,
                                                     "X-Twilio-Webhooks-Signature-Settings": settings_header})
    error = response.get_json()["error"]
    assert response.status_code == 403 and error["code"] == "invalid_signature"
    assert "X-Twilio-Webhooks-Signature-Settings" in error["message"]
    assert jobs() == []


_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=20)


def _edge_accepts(app, path: str, signature: str, **request) -> bool:
    """Whether the edge's signature check lets this request through (whatever it then makes of the fields)."""
    with app.test_request_context(path, method="POST", headers={"X-Twilio-Signature": signature}, **request):
        try:
            signed_fields()
        except ApiError as exc:
            if exc.status == 403:
                return False
        return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(_text.filter(bool), _text, max_size=5), port=st.sampled_from(["", ":443", ":8443"]),
       query=st.sampled_from(["", "?a=1", "?b=2&a=1"]), path=st.sampled_from(["/webhooks/taskrouter", "/x"]),
       tamper=st.booleans(), body=st.binary(max_size=200))
def test_verification_agrees_with_twilios_request_validator(app, scenario, form, port, query, path, tamper, body):
    """For forms and bodySHA256 bodies, signed for the public URL with its default port, without, or with another
    (a URL Baton was not given), intact or tampered, the edge (Flask's views, and for forms the callback served
    below Flask) lets a request through exactly when the SDK's validator says it is valid for PUBLIC_BASE_URL."""
    validator = RequestValidator(scenario.auth_token)
    signature = validator.compute_signature(f"{PUBLIC_BASE_URL}{port}{path}{query}", form)
    if tamper:
        signature = signature[:-2] + ("A=" if signature[-2] != "A" else "B=")
    assert (_edge_accepts(app, path + query, signature, data=form)
            == validator.validate(PUBLIC_BASE_URL + path + query, form, signature))
    # The TaskRouter callback answered below Flask (app.ingest) reads the form itself, and must agree too.
    assert ((signed_form(scenario.auth_token, PUBLIC_BASE_URL + path + query, urlencode(form).encode(), signature)
             is not None) == validator.validate(PUBLIC_BASE_URL + path + query, form, signature))

    text = body.decode("latin-1")  # any characters, sent as UTF-8 (as Twilio sends text)
    hashed = f"{path}{query}{'&' if query else '?'}bodySHA256={hashlib.sha256(text.encode()).hexdigest()}"
    signature = validator.compute_signature(f"{PUBLIC_BASE_URL}{port}{hashed}", {})
    sent = text + "x" if tamper else text
    assert (_edge_accepts(app, hashed, signature, data=sent.encode(), content_type="application/json")
            == validator.validate(PUBLIC_BASE_URL + hashed, sent, signature))


# Bodies over 64 KiB


def test_a_webhook_form_over_64_kib_is_refused(client):
    """A webhook body one byte over 64 KiB is a JSON 413; one of exactly 64 KiB reaches the signature check."""
    over = client.post("/webhooks/taskrouter", data=b"a=" + b"x" * (MAX_BODY_BYTES - 1),
                       content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": "s"})
    assert over.status_code == 413 and over.get_json()["error"]["code"] == "request_entity_too_large"
    at_limit = client.post("/webhooks/taskrouter", data=b"a=" + b"x" * (MAX_BODY_BYTES - 2),
                           content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": "s"})
    assert at_limit.status_code == 403


def test_a_signed_json_body_over_64_kib_is_refused(post_json):
    """A bodySHA256 webhook body over 64 KiB is a 413 although its signature is right."""
    body = json.dumps({**payload(RESERVATION_CREATED), "Padding": "x" * MAX_BODY_BYTES}).encode()
    assert post_json("/webhooks/taskrouter", body).status_code == 413


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/transfers"),
    ("PATCH", "/v1/settings"),
    ("POST", "/v1/transfers/tr_1/cancel"),  # a view that never reads its body
    ("GET", "/v1/transfers/tr_1"),
])
def test_an_api_body_over_64_kib_is_refused(client, scenario, store, method, path):
    """Any API request with a body over 64 KiB is a 413 before authentication, and nothing is recorded."""
    response = client.open(path, method=method, data=b"{" + b" " * MAX_BODY_BYTES + b"}",
                           content_type="application/json", headers=bearer(scenario.tokens["alice"]))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"
    assert store.redis.dbsize() == 0


def test_a_chunked_body_over_64_kib_is_refused(client):
    """A body without Content-Length (chunked) is cut off and refused with a 413 once it passes 64 KiB."""
    response = client.post("/webhooks/taskrouter", input_stream=io.BytesIO(b"a=" + b"x" * MAX_BODY_BYTES),
                           content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": "s"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
