"""The admin page without a browser: sign-in, sessions, CSRF, the settings form and the transfers' JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re

import pytest
from flask import request
from support.admin import ADMIN_TOKEN, csrf_of

import app.admin
from app import create_app
from app.admin import SESSION_LIFETIME, SIGN_IN_FAILURES_PER_CLIENT, SIGN_IN_WINDOW_S, time_to_accept
from baton.domain import transfers as t
from baton.infrastructure.store import Record

SENDER = "WK" + "1" * 32
TARGET = "WK" + "2" * 32


def a_transfer(transfer_id: str, task: str, status: str = t.REQUESTED, updated_at: float = 1.0) -> t.Transfer:
    return t.Transfer(id=transfer_id, from_task_sid=task, from_worker_sid=SENDER, target_type="worker",
                      target_sid=TARGET, status=status, created_at=1.0, updated_at=updated_at)


def test_admin_page_is_404_without_an_admin_token(config, redis_url):
    """Without ADMIN_TOKEN, /admin answers 404 and says how to turn it on."""
    client = create_app(dataclasses.replace(config, admin_token=None)).test_client()
    for path in ("/admin/", "/admin/sign-in", "/admin/settings", "/admin/transfers.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Set ADMIN_TOKEN" in response.text


def test_pages_send_a_visitor_to_sign_in_and_json_answers_401(client):
    """Without a session, pages redirect to the sign-in form (coming back after) and the JSON endpoints say 401."""
    response = client.get("/admin/settings")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/sign-in?next=/admin/settings"
    response = client.get("/admin/transfers.json")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "signed_out"


def test_wrong_token_is_refused(client):
    """A wrong admin token gets the form back with an error, and no session."""
    page = client.get("/admin/sign-in")
    response = client.post("/admin/sign-in", data={"token": "not-the-token", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 401
    assert "That is not the admin token." in response.text
    assert client.get("/admin/").status_code == 302


def test_sign_in_without_the_csrf_token_is_refused(client):
    """Even the right token is refused from a form without the session's CSRF token."""
    client.get("/admin/sign-in")
    response = client.post("/admin/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": "forged"})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_sign_in_goes_to_next_but_never_off_the_admin_page(client):
    """After signing in the admin lands on the page asked for; a ``next`` elsewhere is ignored."""
    page = client.get("/admin/sign-in")
    response = client.post("/admin/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(page.text),
                                                   "next": "//evil.example/admin"})
    assert response.headers["Location"] == "/admin/"
    assert client.get("/admin/sign-in?next=/admin/settings").headers["Location"] == "/admin/settings"


def test_session_cookie_is_httponly_lax_and_limited_to_the_admin_page(client, config):
    """The session cookie is HttpOnly, SameSite=Lax, scoped to /admin, and Secure behind https."""
    page = client.get("/admin/sign-in")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie
    https = create_app(dataclasses.replace(config, public_base_url="https://baton.example.com")).test_client()
    assert "Secure" in https.get("/admin/sign-in").headers["Set-Cookie"]


def test_only_the_admin_pages_open_the_session(app):
    """Outside /admin (webhooks, the agent API) the session cookie is not read: those requests get Flask's null
    session; /admin and everything under it get the signed-cookie session."""
    interface = app.session_interface
    for path, opened in (("/admin", True), ("/admin/", True), ("/admin/settings", True),
                         ("/webhooks/taskrouter", False), ("/v1/transfers", False), ("/administrator", False)):
        with app.test_request_context(path):
            assert (interface.open_session(app, request) is not None) is opened, path


def test_signing_out_ends_the_session(signed_in):
    """Sign-out (a CSRF-protected POST) clears the session."""
    page = signed_in.get("/admin/")
    assert page.status_code == 200
    response = signed_in.post("/admin/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert response.headers["Location"] == "/admin/sign-in"
    assert signed_in.get("/admin/").status_code == 302


def test_a_new_admin_token_signs_every_session_out(signed_in, app):
    """Sessions are bound to the admin token: after a change of ADMIN_TOKEN, old cookies no longer sign in."""
    assert signed_in.get("/admin/").status_code == 200
    app.config["BATON"] = dataclasses.replace(app.config["BATON"], admin_token="a-brand-new-admin-token")
    assert signed_in.get("/admin/").status_code == 302


def admin_cookie(client) -> str:
    return client.get_cookie("baton_admin", path="/admin").value


def test_a_cookie_kept_after_sign_out_no_longer_signs_in(signed_in, app, store):
    """The session lives in Redis too (by its id's SHA-256, for SESSION_LIFETIME): signing out deletes it, so a copy
    of the cookie taken before, replayed afterwards, is signed out."""
    cookie = admin_cookie(signed_in)
    session_id = app.session_interface.get_signing_serializer(app).loads(cookie)["id"]
    [key] = store.redis.keys("baton:admin-session:*")
    assert key == "baton:admin-session:" + hashlib.sha256(session_id.encode()).hexdigest()
    assert SESSION_LIFETIME.total_seconds() - 5 < store.redis.ttl(key) <= SESSION_LIFETIME.total_seconds()
    page = signed_in.get("/admin/")
    signed_in.post("/admin/sign-out", data={"csrf_token": csrf_of(page.text)})

    replay = app.test_client()
    replay.set_cookie("baton_admin", cookie, path="/admin")
    assert replay.get("/admin/").status_code == 302
    assert replay.get("/admin/transfers.json").status_code == 401
    assert store.redis.keys("baton:admin-session:*") == []


def test_a_session_redis_no_longer_has_is_signed_out(signed_in, store):
    """Whatever the cookie says, the session is over once its record in Redis is gone (expired, or deleted)."""
    assert signed_in.get("/admin/").status_code == 200
    store.redis.delete(*store.redis.keys("baton:admin-session:*"))
    assert signed_in.get("/admin/").status_code == 302


def sign_in(client, token: str, **request):
    """Post the sign-in form as a browser does: the form's page first, for its CSRF token."""
    page = client.get("/admin/sign-in", **request)
    return client.post("/admin/sign-in", data={"token": token, "csrf_token": csrf_of(page.text)}, **request)


def pause_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "failed sign-ins" in record.getMessage()]


def test_failed_sign_ins_pause_the_client(client, app, caplog):
    """The probe's attack: wrong tokens one after another. After SIGN_IN_FAILURES_PER_CLIENT failures the client gets
    429 with Retry-After, even with the right token, and one log line for the whole window; another client signs in."""
    caplog.set_level(logging.INFO)
    for _ in range(SIGN_IN_FAILURES_PER_CLIENT):
        assert sign_in(client, "not-the-token").status_code == 401

    paused = [sign_in(client, token) for token in ("not-the-token", ADMIN_TOKEN) * 10]

    assert [response.status_code for response in paused] == [429] * 20
    assert all(1 <= int(response.headers["Retry-After"]) <= SIGN_IN_WINDOW_S for response in paused)
    assert "Too many failed sign-ins: try again in" in paused[-1].text
    assert client.get("/admin/").status_code == 302
    [line] = pause_lines(caplog)
    assert re.fullmatch(rf"admin: {SIGN_IN_FAILURES_PER_CLIENT} failed sign-ins from 127\.0\.0\.1 within "
                        rf"{SIGN_IN_WINDOW_S} s: sign-ins from 127\.0\.0\.1 are refused for \d+ s", line)
    assert ADMIN_TOKEN not in caplog.text
    other = app.test_client()
    assert sign_in(other, ADMIN_TOKEN, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 302


def test_failed_sign_ins_from_all_clients_pause_everyone(client, caplog, monkeypatch):
    """Failures from many addresses add up: past SIGN_IN_FAILURES_IN_ALL (5 here) sign-in is paused for every client,
    a new one included, and that is logged once."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(app.admin, "SIGN_IN_FAILURES_IN_ALL", 5)
    for number in range(5):
        assert sign_in(client, "not-the-token", environ_base={"REMOTE_ADDR": f"192.0.2.{number}"}).status_code == 401
    for number in range(5, 10):
        response = sign_in(client, ADMIN_TOKEN, environ_base={"REMOTE_ADDR": f"192.0.2.{number}"})
        assert response.status_code == 429 and int(response.headers["Retry-After"]) <= SIGN_IN_WINDOW_S
    assert len(pause_lines(caplog)) == 1 and "from all clients" in pause_lines(caplog)[0]


def test_a_good_sign_in_is_not_counted(client):
    """Signing in, out and in again, however often, never pauses anyone."""
    for _ in range(SIGN_IN_FAILURES_PER_CLIENT + 1):
        assert sign_in(client, ADMIN_TOKEN).status_code == 302
        client.post("/admin/sign-out", data={"csrf_token": csrf_of(client.get("/admin/").text)})


def test_settings_form_without_the_csrf_token_changes_nothing(signed_in, store):
    """A settings POST without the session's CSRF token is refused and stores nothing."""
    response = signed_in.post("/admin/settings", data={"transfers_enabled": "on", "max_attempts": "3"})
    assert response.status_code == 400
    assert store.redis.get("baton:settings") is None


def form_of(settings: dict, csrf: str) -> dict:
    """The settings form as a browser posts it: unchecked switches are left out."""
    form = {name: str(value) for name, value in settings.items() if not isinstance(value, bool)}
    form.update({name: "on" for name, value in settings.items() if value is True})
    return {**form, "csrf_token": csrf}


def test_settings_form_saves_switches_and_numbers(signed_in, store, config):
    """Turning notes off and changing max attempts stores both; the others keep their values."""
    page = signed_in.get("/admin/settings")
    settings = {**config.settings.to_dict(), "notes_enabled": False, "max_attempts": 3}
    response = signed_in.post("/admin/settings", data=form_of(settings, csrf_of(page.text)))
    assert response.status_code == 302
    saved = store.settings(config.settings)
    assert (saved.notes_enabled, saved.max_attempts, saved.transfers_enabled) == (False, 3, True)
    assert "Settings saved." in signed_in.get("/admin/settings").text


def test_settings_form_edits_the_customer_notice(signed_in, store, config):
    """The notice the README says the page edits: turned on with new text, and refused past its length."""
    page = signed_in.get("/admin/settings")
    assert 'name="customer_notice_text"' in page.text and 'maxlength="320"' in page.text
    settings = {**config.settings.to_dict(), "customer_notice_enabled": True,
                "customer_notice_text": "One moment: a billing specialist is joining."}
    assert signed_in.post("/admin/settings", data=form_of(settings, csrf_of(page.text))).status_code == 302
    saved = store.settings(config.settings)
    assert (saved.customer_notice_enabled, saved.customer_notice_text) == (
        True, "One moment: a billing specialist is joining.")

    too_long = signed_in.post("/admin/settings", data=form_of(
        {**settings, "customer_notice_text": "x" * 321}, csrf_of(page.text)))
    assert too_long.status_code == 422 and 'id="customer_notice_text-error"' in too_long.text


def test_settings_form_unchanged_stores_nothing(signed_in, store, config):
    """Saving the form as it is stores nothing, so the environment's values keep applying."""
    page = signed_in.get("/admin/settings")
    response = signed_in.post("/admin/settings", data=form_of(config.settings.to_dict(), csrf_of(page.text)))
    assert response.status_code == 302
    assert store.redis.get("baton:settings") is None
    assert "Nothing changed." in signed_in.get("/admin/settings").text


def test_settings_errors_are_shown_next_to_their_fields(signed_in, store, config):
    """Invalid values come back with each error beside its field, and nothing is stored."""
    csrf = csrf_of(signed_in.get("/admin/settings").text)
    settings = {**config.settings.to_dict(), "max_attempts": 0, "offer_timeout_s": ""}
    response = signed_in.post("/admin/settings", data=form_of(settings, csrf))
    assert response.status_code == 422
    assert 'id="max_attempts-error">Must be greater than or equal to 1' in response.text
    assert 'id="offer_timeout_s-error">Not a valid integer.' in response.text
    assert 'value="0"' in response.text  # what the admin typed is kept

    settings = {**config.settings.to_dict(), "offer_timeout_s": 900, "transfer_timeout_s": 600}
    response = signed_in.post("/admin/settings", data=form_of(settings, csrf))
    assert 'id="transfer_timeout_s-error">must be longer than offer_timeout_s' in response.text
    assert store.redis.get("baton:settings") is None


def test_recent_transfers_are_newest_first_filtered_and_skip_expired(store):
    """The store lists recent transfers newest first, by status, without the ones whose record expired."""
    for number, status in enumerate((t.COMPLETED, t.OFFERED, t.FAILED, t.COMPLETED)):
        store.create(Record(a_transfer(f"tr{number}", f"WT{number}", status, updated_at=10.0 + number)))
    store.redis.delete("baton:transfer:tr3")  # as if its retention had run out

    assert [x.id for x in store.recent_transfers()] == ["tr2", "tr1", "tr0"]
    assert [x.id for x in store.recent_transfers(limit=2)] == ["tr2", "tr1"]
    assert [x.id for x in store.recent_transfers(status=t.COMPLETED)] == ["tr0"]
    assert [x.id for x in store.recent_transfers(status=t.PENDING_STATES)] == ["tr1"]
    assert store.redis.zscore("baton:recent", "tr3") is None


def test_time_to_accept_runs_from_the_request_to_the_first_acceptance():
    """Time to accept is read from the timeline; none until an agent accepts."""
    timeline = (t.TimelineEntry(100.0, t.REQUESTED, "requested"), t.TimelineEntry(101.0, t.OFFERED, "offered"),
                t.TimelineEntry(112.5, t.ACCEPTED, "accepted"))
    transfer = dataclasses.replace(a_transfer("tr1", "WT1"), timeline=timeline)
    assert time_to_accept(transfer) == pytest.approx(12.5)
    assert time_to_accept(dataclasses.replace(transfer, timeline=timeline[:2])) is None


def test_list_and_timeline_json_show_what_the_pages_show(signed_in, store):
    """The JSON endpoints the page polls give the rows, filtered by status, and one transfer's timeline."""
    store.create(Record(a_transfer("tr_done", "WT1", t.COMPLETED, updated_at=20.0)))
    store.create(Record(dataclasses.replace(a_transfer("tr_live", "WT2", t.OFFERED, updated_at=30.0), timeline=(
        t.TimelineEntry(1.0, t.REQUESTED, "requested"),
        t.TimelineEntry(2.0, t.OFFERED, "offered", worker_sid=TARGET, reservation_sid="WR" + "3" * 32)))))

    store.cache_names({SENDER: "Alice", TARGET: "Carol"}, ttl_s=60)

    rows = signed_in.get("/admin/transfers.json").json["transfers"]
    assert [(row["id"], row["status"], row["from"], row["to"], row["to_sid"]) for row in rows] == [
        ("tr_live", "offered", "Alice", "Carol", TARGET), ("tr_done", "completed", "Alice", "Carol", TARGET)]
    assert [r["id"] for r in signed_in.get("/admin/transfers.json?status=in_progress").json["transfers"]] == ["tr_live"]
    assert signed_in.get("/admin/transfers.json?status=nonsense").status_code == 404

    detail = signed_in.get("/admin/transfers/tr_live.json").json
    assert detail["final"] is False
    assert (detail["details"]["from_worker"], detail["details"]["to"]) == (
        f"Alice ({SENDER})", f"agent Carol ({TARGET})")
    assert [(row["event"], row["agent"], row["agent_sid"]) for row in detail["timeline"]] == [
        ("requested", "", ""), ("offered", "Carol", TARGET)]
    assert signed_in.get("/admin/transfers/tr_nope").status_code == 404


def test_pages_forbid_framing_and_inline_script(signed_in):
    """Admin pages are never cached or framed, and run only the page's own script."""
    response = signed_in.get("/admin/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self' covers it
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
