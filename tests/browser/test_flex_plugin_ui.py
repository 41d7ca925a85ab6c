"""The Flex UI plugin's components in a real headless Chromium against the live stack.

Flex itself cannot run here (it needs a Twilio account), so each agent gets a small page
(flex-plugin/harness/) that installs the plugin through its real entry point into a stand-in for
the parts of Flex it touches, and mounts what Flex would mount: the sender's transfer form and
banner, the receiver's card. The pages call Baton from their own origin, as Flex does, with the
agents' Flex tokens (CORS_ORIGINS lists the pages' origin). Alice transfers a chat to Bob, who
declines; Baton re-routes it to the Support queue, where Carol accepts.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect
from support.admin import ADMIN_TOKEN, SECRET_KEY
from support.prerequisites import require

from baton.operator.devstack import DevStack, free_port
from simulator.scenario import AGENTS, open_conversation

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "flex-plugin" / "harness"
DOCS = ROOT / "docs"
# Slow enough for each step to be seen by the pages, which poll every 2 s: Bob declines after 8 s
# and Carol accepts 8 s after her offer (simulated seconds x0.5), within the 30 s offer timeout.
TIME_SCALE = 0.5
BOB_DECLINES_AFTER_S = 8
CAROL_ACCEPTS_AFTER_S = 16
NOTES = "Wants a refund for order 4417; card ending 4242 already checked"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def harness_url():
    """The agents' pages, served from an origin of their own (the built page: `make plugin` builds it)."""
    require((HARNESS / "dist" / "harness.js").exists(),
            "flex-plugin/harness/dist/harness.js is missing: `make plugin` (or `npm run build:harness` in "
            "flex-plugin/) builds the page")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(QuietHandler, directory=str(HARNESS)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def plugin_stack(stack_redis, harness_url):
    """Baton (web, worker, beat) and the simulator, with the pages' origin allowed by CORS."""
    devstack = DevStack(stack_redis, time_scale=TIME_SCALE,
                        extra_env={"ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": SECRET_KEY, "CORS_ORIGINS": harness_url})
    devstack.start()
    yield devstack
    devstack.stop()


class Api:
    """What the test reads from Baton (as Erin, a supervisor) and changes in its settings (as the admin)."""

    def __init__(self, stack: DevStack):
        self.url = stack.web_url
        self.tokens = stack.scenario.tokens

    def transfers_of(self, task_sid: str) -> list[dict]:
        response = requests.get(f"{self.url}/v1/transfers", params={"task_sid": task_sid},
                                headers={"Authorization": f"Bearer {self.tokens['erin']}"}, timeout=10)
        response.raise_for_status()
        return response.json()["transfers"]

    def settings(self, **changes) -> dict:
        response = requests.patch(f"{self.url}/v1/settings", json=changes,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def api(plugin_stack):
    client = Api(plugin_stack)
    defaults = client.settings()
    yield client
    client.settings(**defaults)


@pytest.fixture
def answering_agents(plugin_stack):
    """Bob declines and Carol accepts, each after a while; their usual policies come back afterwards."""
    sim, scenario = plugin_stack.simulator, plugin_stack.scenario
    sim.agents.set_policy(scenario.agents["bob"], [{"action": "reject", "delay": BOB_DECLINES_AFTER_S}])
    sim.agents.set_policy(scenario.agents["carol"], [{"action": "accept", "delay": CAROL_ACCEPTS_AFTER_S}])
    yield
    for name in ("bob", "carol"):
        sim.agents.set_policy(scenario.agents[name], AGENTS[name][3])


def wait_for(read, what: str, timeout: float = 15):
    """``read()``'s first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := read()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.1)
    return value


def agent_page(chromium, url: str, errors: list[str]):
    context = chromium.new_context(viewport={"width": 900, "height": 820})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/index.html")
    return page


def boot(page, stack: DevStack, agent: str, role: str, task: dict, **extra) -> None:
    page.evaluate("config => window.harness.boot(config)", {
        "role": role, "agent": agent.capitalize(), "token": stack.scenario.tokens[agent], "batonUrl": stack.web_url,
        "task": task, **extra})


def save_screenshot(page, tmp_path: Path, name: str, locator=None) -> None:
    """A picture for the README: written when missing, or again with UPDATE_SCREENSHOTS=1."""
    shot = tmp_path / name
    (locator or page).screenshot(path=shot)
    target = DOCS / name
    if not target.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, target)


def test_plugin_transfer_through_a_rejection_as_each_agent_sees_it(plugin_stack, api, answering_agents, chromium,
                                                                   harness_url, tmp_path):
    """Alice's form, banner, held wrap-up and notifications, and Bob's and Carol's cards follow a declined transfer."""
    stack, sim = plugin_stack, plugin_stack.simulator
    sids = stack.scenario.agents
    support = stack.scenario.queues["support"]
    api.settings(notes_enabled=True, summary_enabled=True)
    conversation = open_conversation(sim, stack.scenario, "alice")
    errors: list[str] = []

    # Alice, the sender: her chat, Flex's directory, Baton's form.
    alice = agent_page(chromium, harness_url, errors)
    boot(alice, stack, "alice", "sender",
         {"taskSid": conversation.task_sid, "attributes": sim.taskrouter.task(conversation.task_sid).attributes,
          "customer": "Chloe"},
         agents=[{"sid": sids["bob"], "name": "Bob"}, {"sid": sids["carol"], "name": "Carol"}],
         queues=[{"sid": support, "name": "Support"}])
    alice.get_by_role("button", name="Transfer", exact=True).click()
    alice.get_by_role("button", name="Transfer to Bob").click()
    # Flex's directory gives the plugin Bob's sid only: Baton names him.
    form = alice.get_by_role("dialog", name="Transfer to Bob")
    expect(form).to_be_visible()
    notes = form.get_by_label("Notes for the next agent")
    notes.fill(NOTES)
    expect(form.get_by_text(f"{len(NOTES)} / 1000 characters")).to_be_visible()
    # GET /v1/transfer-options: the admin's summary switch reaches the form.
    summary = form.get_by_role("switch")
    summary.click()
    expect(summary).to_have_attribute("aria-checked", "true")
    save_screenshot(alice, tmp_path, "flex-plugin-form.png")
    form.get_by_role("button", name="Transfer", exact=True).click()
    expect(form).to_be_hidden()

    banner = alice.get_by_role("region", name="Transfer status")
    status = banner.get_by_role("status")
    (transfer,) = api.transfers_of(conversation.task_sid)
    assert transfer["notes"] == NOTES  # "4242" alone is no card number: nothing to redact
    assert {sids["alice"]: "Alice", sids["bob"]: "Bob"}.items() <= transfer["names"].items()
    expect(status).to_contain_text("Waiting for Bob…")
    expect(banner.get_by_role("button", name="Cancel transfer")).to_be_visible()

    # Wrap-up is blocked while the transfer is pending: the customer would be stranded.
    alice.get_by_role("button", name="Wrap up").click()
    expect(alice.get_by_test_id("wrapup-outcome")).to_have_text("Flex did not wrap the task up.")
    expect(alice.get_by_test_id("notifications")).to_contain_text("A transfer of this conversation is pending")

    # Bob, offered the new task: the card, from the task's attributes.
    new_task_sid = wait_for(lambda: api.transfers_of(conversation.task_sid)[0]["new_task_sid"], "the new task")
    attributes = sim.taskrouter.task(new_task_sid).attributes
    assert attributes["transfer"]["from_worker_name"] == "Alice"
    bob = agent_page(chromium, harness_url, errors)
    boot(bob, stack, "bob", "receiver", {"taskSid": new_task_sid, "attributes": attributes, "customer": "Chloe"})
    bob_card = bob.get_by_role("region", name="Transfer details")
    expect(bob_card.get_by_role("heading", name="Transferred by Alice")).to_be_visible()
    expect(bob_card.get_by_test_id("baton-transfer-notes")).to_have_text(NOTES)

    # Bob declines: Alice sees where it went next, and Carol is offered it.
    declined = "Bob declined — offered to the Support queue"
    expect(status).to_contain_text(declined)
    expect(status).to_contain_text("Now offered to Carol")
    expect(alice.get_by_test_id("notifications").locator('[data-type="warning"]', has_text=declined)).to_be_visible()
    save_screenshot(alice, tmp_path, "flex-plugin-sender.png")

    # Carol, offered it after the re-route: the same card, with the context excerpt.
    carol = agent_page(chromium, harness_url, errors)
    attributes = sim.taskrouter.task(new_task_sid).attributes
    boot(carol, stack, "carol", "receiver", {"taskSid": new_task_sid, "attributes": attributes, "customer": "Chloe"})
    card = carol.get_by_role("region", name="Transfer details")
    expect(card.get_by_role("heading", name="Transferred by Alice")).to_be_visible()
    expect(card.get_by_test_id("baton-transfer-notes")).to_have_text(NOTES)
    assert attributes["transfer"]["summary"].startswith("Reason: My order 4417 never arrived.")
    expect(card.get_by_test_id("baton-transfer-summary")).to_have_text(attributes["transfer"]["summary"])
    card.get_by_role("button", name=re.compile(r"^Conversation so far")).click()
    expect(card.get_by_text("Hi, my order 4417 never arrived.", exact=True)).to_be_visible()
    save_screenshot(carol, tmp_path, "flex-plugin-receiver.png")

    # Carol accepts: Alice is told, the transfer completes, and wrap-up is no longer held.
    expect(status).to_have_text(re.compile(r"Transferred to Carol"), timeout=30_000)
    expect(alice.get_by_test_id("notifications").locator('[data-type="success"]', has_text="Carol")).to_be_visible()
    expect(banner.get_by_role("button", name="Cancel transfer")).to_have_count(0)
    alice.get_by_role("button", name="Wrap up").click()
    expect(alice.get_by_test_id("wrapup-outcome")).to_have_text("Flex wrapped the task up.")

    (finished,) = api.transfers_of(conversation.task_sid)
    assert finished["status"] == "completed" and finished["accepted_worker_sid"] == sids["carol"]
    assert "offer rejected" in [entry["event"] for entry in finished["timeline"]]
    assert finished["names"] == {sids["alice"]: "Alice", sids["bob"]: "Bob", sids["carol"]: "Carol", support: "Support"}
    # The notes went to the agents' task only, never into the conversation the customer reads.
    bodies = [message["body"] or "" for message in sim.conversations.list_messages(conversation.conversation_sid)]
    assert not any(NOTES in body for body in bodies)
    assert errors == []
