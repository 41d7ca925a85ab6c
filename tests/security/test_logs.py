"""Secrets and PII never logged: every log line of the live stack (web, worker, beat) and of this process, through
transfers carrying a card number in the conversation and the notes, webhooks, Twilio failures and refused callers,
holds no auth token, Flex token, admin token, card number or notes text.

The live stack logs at its production levels (the worker at INFO; under gunicorn the app's own loggers reach the
log from WARNING up), so the same requests are also played against the app in this process with every logger at
DEBUG.
"""

from __future__ import annotations

import base64
import logging
import re

import pytest
import requests
from support.edge import ADMIN_TOKEN, PUBLIC_BASE_URL, bearer, payload
from twilio.request_validator import RequestValidator

from simulator.scenario import open_conversation

CARD = "4111 1111 1111 1111"  # Luhn-valid (Visa's test number)
NOTES = f"card {CARD}, call back about the zebra-quokka refund"
CUSTOMER_SAYS = f"my card is {CARD}, the pelican-umbrella order"
# Any spacing of the card's digits: "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111".
CARD_PATTERN = re.compile(r"4111[\s-]*1111[\s-]*1111[\s-]*1111")


def secrets_of(scenario, admin_token: str, secret_key: str) -> dict[str, str]:
    """Every value that must not reach a log, by name."""
    basic = base64.b64encode(f"{scenario.account_sid}:{scenario.auth_token}".encode()).decode()
    found = {"TWILIO_AUTH_TOKEN": scenario.auth_token, "basic auth": basic, "ADMIN_TOKEN": admin_token,
             "SECRET_KEY": secret_key, "notes": "zebra-quokka", "customer's message": "pelican-umbrella"}
    found.update({f"Flex token of {name}": token for name, token in scenario.tokens.items()})
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets in ``text``, and the lines with a card number."""
    found = [name for name, value in secrets.items() if value in text]
    return found + [f"card number in: {line}" for line in text.splitlines() if CARD_PATTERN.search(line)]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return found[1] if found else ""


def sign_in_to_admin_page(url: str, token: str) -> requests.Response:
    session = requests.Session()
    csrf = csrf_of(session.get(f"{url}/admin/sign-in", timeout=10).text)
    return session.post(f"{url}/admin/sign-in", data={"token": token, "csrf_token": csrf}, timeout=10,
                        allow_redirects=False)


def test_the_app_logs_no_secret_at_any_level(client, sim, scenario, config, caplog):
    """In this process with every logger at DEBUG, a transfer with notes, signed events carrying them, refused
    callers and an admin sign-in log no secret."""
    caplog.set_level(logging.DEBUG)
    secrets = secrets_of(scenario, ADMIN_TOKEN, config.secret_key)
    bogus = f"forged-token-{CARD.replace(' ', '')}"
    secrets["refused token"] = bogus
    client.patch("/v1/settings", json={"redact_pii": False, "summary_enabled": True}, headers=bearer(ADMIN_TOKEN))
    request = {"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"], "notes": NOTES,
               "summary": True}
    assert client.post("/v1/transfers", json=request, headers=bearer(scenario.tokens["alice"])).status_code == 202
    for headers in (bearer(bogus), {"Authorization": bogus}, bearer(scenario.tokens["bob"])):
        assert client.post("/v1/transfers", json=request, headers=headers).status_code in (401, 403, 409)
    assert client.patch("/v1/settings", json={"notes_enabled": False},
                        headers=bearer(scenario.tokens["erin"])).status_code == 403
    # TaskRouter sends the new task's attributes, notes included, with every event of it.
    event = {**payload("taskrouter/reservation_created"), "TaskAttributes": f'{{"transfer": {{"notes": "{NOTES}"}}}}'}
    signature = RequestValidator(scenario.auth_token).compute_signature(PUBLIC_BASE_URL + "/webhooks/taskrouter", event)
    assert client.post("/webhooks/taskrouter", data=event, headers={"X-Twilio-Signature": signature}).status_code == 204
    assert client.post("/webhooks/taskrouter", data=event, headers={"X-Twilio-Signature": bogus}).status_code == 403
    for token in (bogus, ADMIN_TOKEN):
        csrf = csrf_of(client.get("/admin/sign-in").get_data(as_text=True))
        client.post("/admin/sign-in", data={"token": token, "csrf_token": csrf})
    sim.faults.add(product="iam", sequence=[503, 503, 503])  # the gateway tries a read three times
    fresh = sim.iam.mint_token(scenario.agents["alice"], "alice")
    secrets["fresh Flex token"] = fresh
    assert client.get("/v1/transfers/tr_1", headers=bearer(fresh)).status_code == 503

    assert any(record.levelno < logging.INFO for record in caplog.records)  # DEBUG lines were captured
    assert leaks(caplog.text, secrets) == []


@pytest.mark.e2e
def test_no_secret_or_card_number_is_ever_logged(stack, live_api, caplog):
    """Transfers with a card number in the conversation and notes, refused callers and Twilio faults log no secret."""
    caplog.set_level(logging.DEBUG)
    baton = live_api
    sim, scenario, url = stack.simulator, stack.scenario, stack.web_url
    secrets = secrets_of(scenario, stack.extra_env["ADMIN_TOKEN"], stack.extra_env["SECRET_KEY"])
    conversation = lambda: open_conversation(sim, scenario, "alice",  # noqa: E731
                                             messages=(("customer", CUSTOMER_SAYS), ("agent", "Let me check.")))

    # Redaction off, so that the card number reaches every copy Baton makes, then the defaults with a summary.
    baton.settings(redact_pii=False)
    first = conversation()
    # Twilio fails once on the invite and once on IAM: the worker retries, the web answers 503, both log it.
    sim.faults.add(method="POST", path="/Invites", sequence=[503])
    cold = baton.transfer("alice", first.task_sid, scenario.agents["bob"], notes=NOTES)
    assert cold.status_code == 202, cold.text
    assert baton.wait(cold.json()["id"])["status"] in ("completed", "failed")

    baton.settings(redact_pii=True, summary_enabled=True)
    second = conversation()
    warm = baton.transfer("alice", second.task_sid, scenario.agents["carol"], notes=NOTES, mode="warm", summary=True)
    assert warm.status_code == 202, warm.text
    warm_id = warm.json()["id"]
    baton.wait(warm_id, states=("accepted", "completed", "failed"))
    baton.session.post(f"{url}/v1/transfers/{warm_id}/leave", timeout=10,
                       headers={"Authorization": f"Bearer {scenario.tokens['alice']}"})
    baton.wait(warm_id)

    # Callers who are refused: wrong, expired or missing tokens, an agent on admin endpoints, forged webhooks.
    bogus = f"forged-token-{CARD.replace(' ', '')}"
    secrets["refused token"] = bogus
    request = {"task_sid": first.task_sid, "to": scenario.agents["carol"], "notes": NOTES}
    for headers in ({"Authorization": f"Bearer {bogus}"}, {"Authorization": bogus}, {}):
        assert requests.post(f"{url}/v1/transfers", json=request, headers=headers, timeout=10).status_code == 401
    agent = {"Authorization": f"Bearer {scenario.tokens['alice']}"}
    refused = requests.patch(f"{url}/v1/settings", json={"redact_pii": False}, headers=agent, timeout=10)
    assert refused.status_code == 403
    forged = {"EventType": "reservation.created", "Sid": "EV1", "TaskAttributes": f'{{"notes": "{NOTES}"}}'}
    assert requests.post(f"{url}/webhooks/taskrouter", data=forged, headers={"X-Twilio-Signature": bogus},
                         timeout=10).status_code == 403
    assert sign_in_to_admin_page(url, bogus).status_code == 401
    assert sign_in_to_admin_page(url, stack.extra_env["ADMIN_TOKEN"]).status_code == 302
    sim.faults.add(product="iam", sequence=[503, 503, 503])  # the gateway tries a read three times
    fresh = sim.iam.mint_token(scenario.agents["alice"], "alice")
    secrets["fresh Flex token"] = fresh
    assert requests.get(f"{url}/v1/transfers/{warm_id}", headers={"Authorization": f"Bearer {fresh}"},
                        timeout=10).status_code == 503

    # The processes' last words (shutdown, requeued messages) are logs too; this module's stack ends here.
    stack.stop()
    logs = {path.name: path.read_text(errors="replace") for path in stack.log_dir.glob("*.log")}
    assert {"web.log", "worker.log"} <= set(logs)
    assert "POST /v1/transfers" in logs["web.log"] and "succeeded" in logs["worker.log"]  # the logs are the real ones
    logs["this process"] = caplog.text + "\n".join(r.getMessage() for r in caplog.get_records("setup"))
    found = {name: leaks(text, secrets) for name, text in logs.items()}
    assert found == {name: [] for name in logs}, f"the stack's logs are in {stack.log_dir}"
