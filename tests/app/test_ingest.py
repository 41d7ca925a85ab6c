"""TaskRouter's form callbacks answered below Flask (app.ingest): the same reading of the form as werkzeug, the same
signature verdict as twilio's RequestValidator, the same answer, log line and metrics as Flask's view, and every
other case left to Flask."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.edge import PUBLIC_BASE_URL, payload, signature
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.ingest import form_signature_matches, read_form
from workers.celery_app import TRANSFER_INBOX

PATH = "/webhooks/taskrouter"
TRANSFER_ID = "tr_3f1c0e5a9b7d4c2e8a6f1b0d9c7e5a31"  # in the captured payloads' TaskAttributes
RESERVATION_CREATED = "twilio_events/taskrouter/reservation.created"  # an offer of a transfer's new task
NOT_A_TRANSFER = "taskrouter/reservation_accepted_not_a_transfer"


def werkzeug_form(body: bytes) -> list[tuple[str, str]]:
    """The form as Flask's ``request.form`` reads this body: every name with each of its values, in order."""
    request = Request(EnvironBuilder(method="POST", data=body,
                                     content_type="application/x-www-form-urlencoded").get_environ())
    return list(request.form.items(multi=True))


# Percent signs, escapes of any byte (UTF-8 or not), pluses, ampersands and equals signs, backslashes (which the
# reader doubles), text beyond ASCII: what would make a reader of its own disagree with werkzeug's.
_piece = st.one_of(
    st.sampled_from(["%", "%2", "%zz", "%41", "%2B", "%26", "%3D", "%5C", "%5Cx41", "+", "&", "=", "\\", "\\x41",
                     "\\%41", "%C3%A9", "%C3", "%A9", "%E2%82%AC", "%F0%9F%98%80", "%ff", "é", "€", "\n"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=4),
    st.builds(lambda byte: f"%{byte:02X}", st.integers(0, 255)),
)
_bodies = st.one_of(
    st.lists(_piece, max_size=12).map(lambda pieces: "".join(pieces).encode()),
    st.binary(max_size=40),
    st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=5).map(lambda form: urlencode(form).encode()),
)


@settings(max_examples=500, deadline=None)
@given(body=_bodies)
def test_a_form_is_read_as_werkzeug_reads_it_or_left_to_it(body):
    """For any body, the reader gives werkzeug's fields and values in werkzeug's order, or None (Flask then reads
    it): never a reading of its own."""
    fields = read_form(body)
    if fields is not None:
        expected: dict[str, list[str]] = {}
        for name, value in werkzeug_form(body):
            expected.setdefault(name, []).append(value)
        assert fields == expected and list(fields) == list(expected)


def test_twilios_forms_are_read_here():
    """What Twilio sends (percent-encoded UTF-8, JSON attributes, repeated names) is read here, not left to Flask."""
    form = [("TaskAttributes", '{"name": "Zoë", "note": "50% off & more = +1 \\\\ ok"}'), ("EventType", "a b"),
            ("Skill", "billing"), ("Skill", "sales"), ("Empty", "")]
    body = urlencode(form).encode()
    assert read_form(body) == {name: [value for key, value in form if key == name] for name, _ in form}
    assert parse_qsl(body.decode(), keep_blank_values=True) == werkzeug_form(body) == form


_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=12)


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(_text, st.lists(_text, min_size=1, max_size=3), max_size=6),
       signed_url=st.sampled_from(["https://baton.example.com", "https://baton.example.com:443",
                                   "https://baton.example.com:8443", "http://baton.example.com",
                                   "http://baton.example.com:80"]),
       url=st.sampled_from(["https://baton.example.com", "https://baton.example.com:443", "http://baton.example.com"]),
       path=st.sampled_from([PATH, PATH + "?a=1&b=2", "/x"]), tamper=st.sampled_from(["", "A", "drop"]),
       token=st.sampled_from(["12345", "0123456789abcdef0123456789abcdef"]))
def test_the_form_signature_is_the_sdks_verdict(fields, signed_url, url, path, tamper, token):
    """For any form (names repeated, values repeated), signed for the URL with or without a port, another URL or
    another path, intact or tampered, the check built for the callback says what twilio's RequestValidator says."""
    validator = RequestValidator(token)
    multidict = MultiDict([(name, value) for name, values in fields.items() for value in values])
    signed = validator.compute_signature(signed_url + path, multidict)
    signed = {"": signed, "A": signed[:-2] + ("A=" if signed[-2] != "A" else "B="), "drop": signed[:-1]}[tamper]
    assert form_signature_matches(token, url + path, fields, signed) == validator.validate(url + path, multidict,
                                                                                            signed)


def test_an_event_is_answered_below_flask_as_flask_answers_it(app, client, scenario, jobs, inbox, caplog):
    """A signed callback of a transfer's task is delivered once and answered 204 with Flask's headers (request id,
    nosniff, HSTS) and its INFO line; Flask's request handling never runs for it."""
    flask_saw = []
    app.before_request(lambda: flask_saw.append(1))
    event = payload(RESERVATION_CREATED)
    headers = {"X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + PATH, event),
               "X-Request-ID": "req-from-the-router-0001"}
    with caplog.at_level(logging.DEBUG, logger="baton.requests"):
        answers = [client.post(PATH, data=event, headers=headers) for _ in range(2)]

    for response in answers:
        assert (response.status_code, response.content_type, response.data) == (204, "application/json", b"")
        assert response.headers["X-Request-ID"] == "req-from-the-router-0001"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert [(job.name, job.args) for job in jobs()] == [(TRANSFER_INBOX, [TRANSFER_ID])]
    assert [(delivery["source"], delivery["fields"]["Sid"]) for delivery in inbox(TRANSFER_ID)] == [
        ("taskrouter", event["Sid"])]
    lines = [record for record in caplog.records if record.name == "baton.requests"]
    assert [(record.levelno, record.getMessage(), record.status) for record in lines] == [
        (logging.INFO, f"POST {PATH} 204", 204)] * 2
    assert flask_saw == []


def test_an_event_of_no_transfer_is_logged_at_debug(client, scenario, caplog):
    """An event about no transfer is answered 204 and its line logged at DEBUG, as Flask's view logs it."""
    event = payload(NOT_A_TRANSFER)
    with caplog.at_level(logging.DEBUG, logger="baton.requests"):
        response = client.post(PATH, data=event, headers={
            "X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + PATH, event)})
    assert response.status_code == 204
    assert [record.levelno for record in caplog.records if record.name == "baton.requests"] == [logging.DEBUG]


@pytest.mark.parametrize("case", ["bad signature", "no signature", "no EventType", "query string", "shared key",
                                  "not UTF-8", "a stray percent sign"])
def test_what_it_cannot_answer_204_for_sure_goes_to_flask(app, client, scenario, case):
    """A forged or incomplete event, a query string, a SharedKey signature, or a body this reader leaves to
    werkzeug is answered by Flask, as before: a 403 or 400, or the 204 of an event it reads itself."""
    flask_saw = []
    app.before_request(lambda: flask_saw.append(1))
    event = payload(NOT_A_TRANSFER)
    path, body = PATH, urlencode(event).encode()
    if case == "no EventType":
        event.pop("EventType")
        body = urlencode(event).encode()
    elif case == "not UTF-8":
        body += b"&Extra=%ff"
    elif case == "a stray percent sign":
        body += b"&Extra=100%"
    elif case == "query string":
        path = PATH + "?env=prod"
    headers = {"X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + path,
                                               dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True)))}
    if case == "bad signature":
        headers["X-Twilio-Signature"] = "bm90IGEgc2lnbmF0dXJl"
    elif case == "no signature":
        headers = {}
    elif case == "shared key":
        headers["X-Twilio-Webhooks-Signature-Settings"] = "key=webhooks_sharedkey_01,algorithm=HMAC_SHA1"
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded", headers=headers)
    expected = {"bad signature": 403, "no signature": 403, "shared key": 403, "no EventType": 400,
                "query string": 204}
    if case in expected:
        assert response.status_code == expected[case]
    else:  # werkzeug reads a bad escape as it is: the form signed here was read some other way
        assert response.status_code in (204, 403)
    assert flask_saw == [1]


def test_an_event_whose_job_was_not_enqueued_here_is_tried_again_by_flask(client, scenario, jobs, inbox, monkeypatch):
    """When enqueueing the inbox's job fails below Flask (the event undelivered), Flask tries once more: one job
    reads the inbox, which holds that event only."""
    import app.webhooks

    real_send, calls = app.webhooks.send_job, []

    def fails_once(celery, name, transfer_id):
        calls.append((name, transfer_id))
        if len(calls) == 1:
            raise ConnectionError("broker away for a moment")
        return real_send(celery, name, transfer_id)

    monkeypatch.setattr(app.webhooks, "send_job", fails_once)
    event = payload(RESERVATION_CREATED)
    response = client.post(PATH, data=event, headers={
        "X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + PATH, event)})
    assert response.status_code == 204 and calls == [(TRANSFER_INBOX, TRANSFER_ID)] * 2
    assert [(job.name, job.args) for job in jobs()] == [(TRANSFER_INBOX, [TRANSFER_ID])]
    # The first attempt's copy stays in the inbox (Store.undeliver_event): applying an event twice changes nothing.
    assert [delivery["fields"]["Sid"] for delivery in inbox(TRANSFER_ID)] == [event["Sid"]] * 2


@pytest.mark.parametrize("length", ["+{n}", " {n}", "{n}.0", ""])
def test_a_content_length_that_is_not_plain_digits_goes_to_flask(app, client, scenario, length):
    """A Content-Length werkzeug would not read as a length (a sign, spaces, none) is left to Flask, whatever it makes
    of the request."""
    flask_saw = []
    app.before_request(lambda: flask_saw.append(1))
    event = payload(NOT_A_TRANSFER)
    body = urlencode(event).encode()
    client.post(PATH, data=body, content_type="application/x-www-form-urlencoded",
                headers={"X-Twilio-Signature": signature(scenario.auth_token, PUBLIC_BASE_URL + PATH, event)},
                environ_overrides={"CONTENT_LENGTH": length.format(n=len(body))})
    assert flask_saw == [1]
