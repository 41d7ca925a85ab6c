"""The admin page in a real headless Chromium against the live stack: gunicorn, the Celery worker, the simulator."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.admin import ADMIN_TOKEN

from simulator.scenario import AGENTS, open_conversation

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "admin.png"
# Simulated seconds (x0.2 in real time): slow enough to watch the transfer in the page, within the
# transfer workflow's 30 s offer timeout.
ANSWER_AFTER_S = 15


@pytest.fixture
def slow_agents(stack):
    """Bob rejects and Carol accepts, each after ANSWER_AFTER_S; their usual policies come back afterwards."""
    sim, scenario = stack.simulator, stack.scenario
    sim.agents.set_policy(scenario.agents["bob"], [{"action": "reject", "delay": ANSWER_AFTER_S}])
    sim.agents.set_policy(scenario.agents["carol"], [{"action": "accept", "delay": ANSWER_AFTER_S}])
    yield
    for name in ("bob", "carol"):
        sim.agents.set_policy(scenario.agents[name], AGENTS[name][3])


def save_settings(page) -> None:
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")


def stays_on_page(page) -> None:
    """Mark the page: ``assert_not_reloaded`` then proves that what changed came from its live refresh."""
    page.evaluate("window.batonTestMark = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.batonTestMark === true"), "the page was reloaded"


def test_admin_switches_notes_and_watches_a_transfer_live(stack, api, page, slow_agents, tmp_path):
    """Sign in; with notes off a transfer with notes is refused; with notes on one appears and its timeline fills in."""
    sids = stack.scenario.agents
    page.goto(f"{stack.web_url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/sign-in\?next="))
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Recent transfers")).to_be_visible()

    page.get_by_role("link", name="Settings").click()
    notes = page.get_by_role("switch", name="Transfer notes")
    expect(notes).to_be_checked()
    notes.uncheck()
    expect(page.get_by_text("Unsaved changes")).to_be_visible()
    save_settings(page)
    expect(notes).not_to_be_checked()

    conversation = open_conversation(stack.simulator, stack.scenario, "alice")
    refused = api.transfer("alice", conversation.task_sid, sids["bob"], notes="Wants a refund for order 4417")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "notes_disabled"

    notes.check()
    save_settings(page)
    expect(notes).to_be_checked()

    page.get_by_role("link", name="Transfers").click()
    stays_on_page(page)
    response = api.transfer("alice", conversation.task_sid, sids["bob"], notes="Wants a refund for order 4417")
    assert response.status_code == 202, response.text
    transfer_id = response.json()["id"]
    row = page.locator(f'tr[data-id="{transfer_id}"]')
    expect(row).to_be_visible()
    assert_not_reloaded(page)
    # Agents by the names TaskRouter gives them; the sid on hover.
    expect(row.locator("td").nth(2)).to_have_text("Alice")
    expect(row.locator("td").nth(2).locator(".who")).to_have_attribute("title", sids["alice"])
    expect(row.locator("td").nth(3)).to_have_text("agent Bob")

    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile(transfer_id))).to_be_visible()
    stays_on_page(page)
    events = page.locator(".timeline tbody td.event")
    assert "completed" not in events.all_text_contents(), "the transfer was over before its page opened"
    expect(page.locator(".notes")).to_have_text("Wants a refund for order 4417")
    expect(page.locator("[data-details-status]")).to_have_text("completed", timeout=30_000)
    expect(events).to_contain_text(["requested", "offered", re.compile(r"offer (rejected|ended)"), "offered",
                                    "accepted", "sender closed", "completed"])
    agents = page.locator(".timeline tbody tr", has=page.locator("td.event", has_text=re.compile(r"^offered$")))
    # TaskRouter may offer Bob the task again before it hears of the re-route: Baton refuses it, uncounted.
    offered = agents.locator("td.stack > .who").all_text_contents()
    assert list(dict.fromkeys(offered)) == ["Bob", "Carol"]
    assert_not_reloaded(page)
    expect(page.locator("[data-live]")).to_have_text("Finished")
    page.screenshot(path=tmp_path / "admin.png", full_page=True)
    # The README's picture: written when missing, or again with UPDATE_SCREENSHOTS=1.
    if not SCREENSHOT.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "admin.png", SCREENSHOT)

    page.get_by_role("link", name="Recent transfers").click()
    row = page.locator(f'tr[data-id="{transfer_id}"]')
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator("td").nth(5)).to_have_text("2")
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^\d+\.\d s$"))
    page.get_by_role("link", name="Failed").click()
    expect(page.locator(f'tr[data-id="{transfer_id}"]')).to_have_count(0)
    page.get_by_role("link", name="Completed").click()
    expect(page.locator(f'tr[data-id="{transfer_id}"]')).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{stack.web_url}/admin/settings")
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
