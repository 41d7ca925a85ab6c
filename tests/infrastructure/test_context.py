"""The context copy and the attribute budget: email text, fitting, and collection against the simulator."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.domain import attributes
from baton.domain.attributes import (
    AGENT,
    ATTRIBUTES_LIMIT,
    BODY_CUT,
    CUSTOMER,
    FLEX_INVITE_KEYS,
    NOTES_CUT,
    SEPARATOR_CHARS,
    SYSTEM,
    AttributesTooLarge,
    Context,
    ContextMessage,
    fit_attributes,
    json_length,
    serialize_attributes,
    stored_length,
)
from baton.infrastructure.config import Config
from baton.infrastructure.context import (
    MAX_PAGE_SIZE,
    MEDIA_BODY,
    collect_context,
    email_text,
    page_size_for,
)
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TwilioGateway, build_twilio_client
from simulator import Simulator
from simulator.scenario import build_default_scenario

WORKER, QUEUE = "WK" + "1" * 32, "WQ" + "2" * 32
ROUTING = {"transferTargetType": "queue", "transferTargetSid": QUEUE, "transferQueueSid": QUEUE,
           "transferExcludedWorkers": [WORKER, "WK" + "3" * 32]}
ORIGINAL = {"conversationSid": "CH" + "4" * 32, "flexInteractionSid": "KD" + "5" * 32,
            "flexInteractionChannelSid": "UO" + "6" * 32, "customerName": "Chloe", "channelType": "chat",
            "conversations": {"conversation_id": "CH" + "4" * 32}}
BASE = {**ORIGINAL, **ROUTING}


def message(body: str, role: str = CUSTOMER, at: str | None = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {"role": role, "at": at, "body": body}


def transfer(messages=(), summary=None, notes=None, context=True, **extra) -> dict[str, Any]:
    return {"id": "tr_1", "mode": "cold", "from_worker_sid": WORKER, "from_task_sid": "WT" + "7" * 32,
            "attempt": 0, "notes": notes, "summary": summary,
            "context": {"messages": list(messages), "message_count": 120, "earlier_transfers": 1} if context else None,
            **extra}


def fitted_transfer(base, value, limit=ATTRIBUTES_LIMIT) -> dict[str, Any]:
    fitted = fit_attributes(base, value, limit=limit)
    assert stored_length(fitted) <= limit
    return fitted["transfer"]


# Email bodies

def test_email_html_becomes_text_without_quoted_history():
    """HTML becomes text (entities, line breaks, lists) and Gmail's quoted block and scripts are dropped."""
    body = ("<html><head><style>p {color: red}</style></head><body><p>Hello&nbsp;team,</p>"
            "<p>My order <b>4417</b> is late.<br>Please help.</p><ul><li>blue</li><li>large</li></ul>"
            "<div class=\"gmail_quote\"><div>On Mon, Chloe wrote:</div><blockquote>old <div>news</div></blockquote>"
            "</div></body></html>")

    assert email_text(body) == "Hello team,\n\nMy order 4417 is late.\nPlease help.\n\n- blue\n- large"


def test_email_text_strips_quoted_lines_and_reply_headers():
    """Lines quoted with ">" go, and so does everything from a (wrapped) "On … wrote:" line."""
    body = ("Thanks, that works.\n> earlier text\nSee you\n\n"
            "On Mon, 6 May 2024 at 10:00, Chloe Customer <chloe@example.com>\nwrote:\n> Hi\n> there")

    assert email_text(body) == "Thanks, that works.\nSee you"


def test_email_text_stops_at_an_outlook_original_message():
    """Outlook's "-----Original Message-----" separator ends the new part of the email."""
    assert email_text("New question\n-----Original Message-----\nFrom: us\nOld answer") == "New question"


def test_blockquote_only_hides_its_own_content():
    """Text after a closed quoted block shows again."""
    assert email_text("<p>Before</p><blockquote><blockquote>x</blockquote>y</blockquote><p>After</p>") == \
        "Before\n\nAfter"


# The attribute budget

def test_everything_that_fits_is_kept_as_is():
    """A transfer that fits is returned whole next to the untouched base."""
    value = transfer([message("Hi, my order 4417 never arrived.")], summary="Late order.", notes="VIP customer")

    assert fit_attributes(BASE, value) == {**BASE, "transfer": value}


def test_a_transfer_key_in_the_original_attributes_is_replaced():
    """The transfer object of an earlier transfer, copied with the original attributes, gives way to this one."""
    value = transfer()

    fitted = fit_attributes({**BASE, "transfer": {"id": "tr_0", "notes": "x" * 5000}}, value)
    assert fitted["transfer"] == value


def test_oldest_messages_go_first():
    """The oldest messages are dropped until the context fits; the rest stay whole."""
    messages = [message(f"message number {i} " + "x" * 80) for i in range(60)]

    kept = fitted_transfer(BASE, transfer(messages, summary="s" * 300, notes="n" * 500))
    assert 0 < len(kept["context"]["messages"]) < 60
    assert kept["context"]["messages"] == messages[-len(kept["context"]["messages"]):]
    assert (kept["summary"], kept["notes"]) == ("s" * 300, "n" * 500)


def test_a_long_newest_body_is_shortened_with_a_marker():
    """When only the newest message is left and still too long, its body is cut with a visible marker."""
    body = "Dear team, " + "the parcel is lost. " * 2000
    kept = fitted_transfer(BASE, transfer([message("older"), message(body)], summary="Lost parcel.", notes="Call back"))

    (newest,) = kept["context"]["messages"]
    assert newest["body"].endswith(BODY_CUT) and body.startswith(newest["body"].removesuffix(BODY_CUT))
    assert (kept["summary"], kept["notes"]) == ("Lost parcel.", "Call back")


def test_summary_is_shortened_then_dropped_before_the_notes_are_cut():
    """With no room for context, the summary shrinks, then goes; the notes are cut last, with their marker."""
    big_base = {**BASE, "history": "h" * 2000}
    notes = "n" * 1000
    shortened = fitted_transfer(big_base, transfer([message("m" * 200)], summary="s" * 600, notes=notes))
    assert shortened["context"]["messages"] == []
    assert shortened["summary"].endswith(BODY_CUT) and shortened["notes"] == notes

    bigger_base = {**BASE, "history": "h" * 2500}
    cut = fitted_transfer(bigger_base, transfer([message("m" * 200)], summary="s" * 600, notes=notes))
    assert (cut["summary"], cut["context"]) == (None, None)
    assert cut["notes"].endswith(NOTES_CUT) and notes.startswith(cut["notes"].removesuffix(NOTES_CUT))


def test_non_ascii_is_measured_escaped_and_spaced():
    """Accents and emoji count as escaped JSON with spaced separators, longer than what the gateway sends."""
    body = "é😀" * 2000
    kept = fitted_transfer(BASE, transfer([message(body)]))

    assert json_length(kept) > len(json.dumps(kept, ensure_ascii=False))
    assert json_length({"a": "é", "b": 1}) == len('{"a": "\\u00e9", "b": 1}')
    assert len(serialize_attributes({**BASE, "transfer": kept})) < stored_length({**BASE, "transfer": kept})


def test_stored_length_counts_only_the_flex_keys_the_attributes_lack():
    """Flex's invite keys already in the attributes count once; the missing ones are counted at their longest."""
    without_flex_keys = {"customerName": "Chloe"}

    assert stored_length(BASE) == json_length({**BASE, "flexChannelInviteSid": FLEX_INVITE_KEYS["flexChannelInviteSid"],
                                               "flexInteractionType": FLEX_INVITE_KEYS["flexInteractionType"]})
    assert stored_length(without_flex_keys) == json_length({**without_flex_keys, **FLEX_INVITE_KEYS})


def test_base_too_large_raises():
    """Copied attributes that alone exceed the limit make fitting fail with a clear reason."""
    with pytest.raises(AttributesTooLarge, match="over TaskRouter's limit of 4096"):
        fit_attributes({**BASE, "history": "h" * 4000}, transfer(notes="n"))


def test_fitting_huge_input_measures_each_part_about_once(monkeypatch):
    """Ten thousand long messages, a long summary and notes are fitted by measuring about as much JSON as they hold,
    not by serializing the whole value again for each message shed (which took seconds)."""
    value = transfer([message(f"{i} " + "é" * 1000) for i in range(10_000)], summary="s" * 5000, notes="n" * 1000)
    measured = []
    real_json_length = attributes.json_length

    def counting(part: Any) -> int:
        measured.append(real_json_length(part))
        return measured[-1]

    monkeypatch.setattr(attributes, "json_length", counting)
    fitted_transfer(BASE, value)
    assert sum(measured) < 3 * json.dumps(value).__len__()


# The property: always within the limit, routing intact, notes kept when they fit, shedding in order.

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["😀👍🏽", "👨‍👩‍👧", "é à ü", "\"quoted\\\"", "line\nbreak\ttab", "日本語テキスト", "\u0000\u001f"])
_LONG_TEXT = st.builds(lambda piece, times: piece * times, _TEXT, st.integers(1, 300))
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                     max_leaves=12)
_MESSAGE = st.builds(message, _LONG_TEXT, st.sampled_from([CUSTOMER, AGENT, SYSTEM]),
                     st.sampled_from(["2024-05-01T10:00:00Z", None]))


@st.composite
def _cases(draw):
    original = draw(st.dictionaries(_TEXT, _JSON, max_size=6))
    if draw(st.booleans()):
        original["filler"] = "f" * draw(st.integers(0, 4200))
    routing = {**ROUTING, "transferExcludedWorkers": [f"WK{i:032d}" for i in range(draw(st.integers(0, 20)))]}
    base = {**original, **routing}
    messages = draw(st.lists(_MESSAGE, max_size=150))
    context = None if draw(st.integers(0, 5)) == 0 else {
        "messages": messages, "message_count": draw(st.integers(0, 10**6)),
        "earlier_transfers": draw(st.integers(0, 9))}
    if context is not None and draw(st.booleans()):
        context["subject"] = draw(_TEXT)
    summary = draw(st.none() | _LONG_TEXT.map(lambda text: text[:600]))
    notes = draw(st.none() | _LONG_TEXT.map(lambda text: text[:1000]))
    value = {"id": "tr_x", "mode": "warm", "from_worker_sid": WORKER, "from_task_sid": "WT1", "attempt": 2,
             "earlier_transfers": 1, "notes": notes, "summary": summary, "context": context}
    return base, value, draw(st.sampled_from([ATTRIBUTES_LIMIT, 3000]))


def _was_cut(text: str | None, original: str | None, marker: str) -> bool:
    return text != original and text is not None and text.endswith(marker)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_cases())
def test_fitted_attributes_always_fit(case):
    """Whatever the input, the attributes fit, the base is exact, fitting notes stay whole and shedding is in order."""
    base, value, limit = case
    minimal = {**base, "transfer": {**value, "notes": None, "summary": None, "context": None}}
    try:
        fitted = fit_attributes(base, value, limit=limit)
    except AttributesTooLarge:
        assert stored_length(minimal) > limit
        return

    assert stored_length(fitted) <= limit
    assert set(fitted) == set(base) | {"transfer"}
    assert all(json.dumps(fitted[key]) == json.dumps(base[key]) for key in base if key != "transfer")
    out = fitted["transfer"]
    assert {key: out[key] for key in value if key not in ("notes", "summary", "context")} == \
        {key: value[key] for key in value if key not in ("notes", "summary", "context")}
    if stored_length({**base, "transfer": value}) <= limit:
        assert out == value

    notes, summary, context = value["notes"], value["summary"], value["context"]
    if stored_length({**minimal, "transfer": {**minimal["transfer"], "notes": notes}}) <= limit:
        assert out["notes"] == notes
    assert out["notes"] in (notes, None) or _was_cut(out["notes"], notes, NOTES_CUT)
    assert out["summary"] in (summary, None) or _was_cut(out["summary"], summary, BODY_CUT)
    for text, original, marker in ((out["notes"], notes, NOTES_CUT), (out["summary"], summary, BODY_CUT)):
        if _was_cut(text, original, marker):
            assert original.startswith(text.removesuffix(marker))

    # Shedding order: notes only once summary and context are gone; summary only once messages are.
    if out["notes"] != notes:
        assert out["summary"] is None and out["context"] is None
    if context is not None and out["context"] is None:
        assert out["summary"] is None
    kept = (out["context"] or {}).get("messages") or []
    if out["summary"] != summary:
        assert kept == []
    if out["context"] is not None:
        assert {k: v for k, v in out["context"].items() if k != "messages"} == \
            {k: v for k, v in context.items() if k != "messages"}
    messages = context["messages"] if context else []
    if kept and kept[-1] != messages[-1]:
        (newest,) = kept
        assert _was_cut(newest["body"], messages[-1]["body"], BODY_CUT)
        assert messages[-1]["body"].startswith(newest["body"].removesuffix(BODY_CUT))
    elif kept:
        assert kept == messages[len(messages) - len(kept):]


# Collecting the context from the simulator, through the real gateway

@pytest.fixture
def sim():
    with Simulator(time_scale=0.05) as sim:
        sim.serve()
        yield sim


def gateway_for(sim: Simulator) -> TwilioGateway:
    config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                    twilio_workspace_sid="WS" + "0" * 32, transfer_workflow_sid="WW" + "0" * 32,
                    public_base_url="https://baton.example.com", twilio_api_base=sim.url)
    return TwilioGateway(build_twilio_client(config), config.twilio_workspace_sid)


def chat(sim: Simulator, count: int) -> str:
    """A chat conversation of ``count`` messages, customer and agent in turn, numbered from 0."""
    conversation = sim.conversations.create_conversation()
    sim.conversations.add_participant(conversation.sid, identity="customer-1f2e")
    sim.conversations.add_participant(conversation.sid, identity="alice", attributes={"member_type": "agent"})
    for number in range(count):
        author = "customer-1f2e" if number % 2 == 0 else "alice"
        sim.conversations.add_message(conversation.sid, author, f"message {number}: the parcel has not arrived yet",
                                      webhooks=False)
    return conversation.sid


def message_lists(sim: Simulator, conversation_sid: str) -> int:
    return len(sim.requests.find("GET", f"/Conversations/{conversation_sid}/Messages"))


@pytest.mark.parametrize("count", [10, 100_000])
def test_collection_cost_follows_the_budget_not_the_conversation(sim, count):
    """10 or 100,000 messages: one message-list request, and the newest messages in the context."""
    conversation_sid = chat(sim, count)
    gateway = gateway_for(sim)

    started = time.perf_counter()
    context = collect_context(gateway, conversation_sid, channel="chat", redact_pii=True, earlier_transfers=0)
    elapsed = time.perf_counter() - started

    assert message_lists(sim, conversation_sid) == 1
    assert elapsed < 1.0
    assert context.message_count == count
    assert context.messages[-1].body == f"message {count - 1}: the parcel has not arrived yet"
    numbers = [int(m.body.split(":")[0].split()[1]) for m in context.messages]
    assert numbers == list(range(count - len(numbers), count))
    assert [m.role for m in context.messages[-2:]] == [CUSTOMER, AGENT]
    total = sum(json_length(m.to_dict()) + SEPARATOR_CHARS for m in context.messages)
    assert total >= ATTRIBUTES_LIMIT or len(context.messages) == count


def test_empty_messages_fill_the_budget_from_one_page(sim):
    """Even messages with empty bodies, the smallest there are, fill the default budget from one page."""
    conversation = sim.conversations.create_conversation()
    for _ in range(1_000):
        sim.conversations.add_message(conversation.sid, "x", "", webhooks=False)

    context = collect_context(gateway_for(sim), conversation.sid, channel="chat", redact_pii=False,
                              earlier_transfers=0, participants=[])
    assert message_lists(sim, conversation.sid) == 1
    assert sum(json_length(m.to_dict()) + SEPARATOR_CHARS for m in context.messages) >= ATTRIBUTES_LIMIT


def test_collection_stops_with_the_message_that_fills_the_budget(sim):
    """The context holds just enough newest messages to reach the budget, from one page sized for it."""
    conversation_sid = chat(sim, 500)

    context = collect_context(gateway_for(sim), conversation_sid, channel="chat", redact_pii=True,
                              earlier_transfers=2, budget_chars=600)
    lengths = [json_length(m.to_dict()) + SEPARATOR_CHARS for m in context.messages]
    assert sum(lengths) >= 600 > sum(lengths[1:])
    assert message_lists(sim, conversation_sid) == 1
    assert page_size_for(600) < MAX_PAGE_SIZE
    assert context.earlier_transfers == 2


# The stored size against the simulator's Flex and TaskRouter

def invite_with(sim: Simulator, scenario, attributes: dict[str, Any]):
    conversation = scenario.conversation
    return gateway_for(sim).create_invite(conversation.interaction_sid, conversation.channel_sid, {
        "workspace_sid": scenario.workspace_sid, "workflow_sid": scenario.transfer_workflow_sid,
        "task_channel_unique_name": "chat", "attributes": attributes})


@pytest.mark.parametrize("copied_flex_keys", [True, False], ids=["original with Flex's keys", "original without"])
def test_the_largest_fitted_attributes_are_stored_by_an_invite(sim, copied_flex_keys):
    """Attributes fitted to the limit, sent with an invite, fit TaskRouter's 4096 characters with Flex's keys."""
    scenario = build_default_scenario(sim)
    original = sim.taskrouter.task(scenario.conversation.task_sid).attributes
    if not copied_flex_keys:
        original = {key: value for key, value in original.items() if key not in FLEX_INVITE_KEYS}
    attributes = fit_attributes({**original, **ROUTING}, transfer([message("é" * 5000)]))

    invite = invite_with(sim, scenario, attributes)

    stored = sim.taskrouter.task(invite.task_sid).to_resource()["attributes"]
    # All the room is used but flexInteractionType's, a key the simulated Flex does not add.
    unused = json_length({"flexInteractionType": FLEX_INVITE_KEYS["flexInteractionType"]}) - len("{}")
    assert ATTRIBUTES_LIMIT - unused - 10 < len(stored) <= ATTRIBUTES_LIMIT
    assert json.loads(stored)["transfer"]["context"]["messages"][0]["body"].endswith(BODY_CUT)


def test_attributes_fitted_past_the_limit_are_refused_by_an_invite(sim):
    """The simulator's check bites: the same attributes fitted 100 characters past the limit are a 400."""
    scenario = build_default_scenario(sim)
    original = sim.taskrouter.task(scenario.conversation.task_sid).attributes
    attributes = fit_attributes({**original, **ROUTING}, transfer([message("é" * 5000)]),
                                limit=ATTRIBUTES_LIMIT + 100)

    with pytest.raises(PermanentTwilioError) as refused:
        invite_with(sim, scenario, attributes)

    assert refused.value.status == 400 and "4096" in str(refused.value)


def test_roles_from_the_scenario_participants(sim):
    """The customer, the agent Flex joined, an agent who left, and an author who is no participant."""
    scenario = build_default_scenario(sim)
    conversation_sid = scenario.conversation.conversation_sid
    conversations = sim.conversations
    bob = conversations.add_participant(conversation_sid, identity="bob", attributes={"member_type": "agent"})
    conversations.add_message(conversation_sid, "bob", "Bob here, passing you on.")
    conversations.remove_participant(conversation_sid, bob.sid)
    conversations.add_message(conversation_sid, "system", "Chat transferred")
    conversations.add_message(conversation_sid, "carol", "Carol speaking.")

    context = collect_context(gateway_for(sim), conversation_sid, channel="chat", redact_pii=True,
                              earlier_transfers=0, agent_identities={"carol"})
    assert [(m.role, m.body) for m in context.messages] == [
        (CUSTOMER, "Hi, my order 4417 never arrived."), (AGENT, "Sorry to hear that, let me check."),
        (AGENT, "Bob here, passing you on."), (SYSTEM, "Chat transferred"), (AGENT, "Carol speaking.")]
    assert all(m.at and m.at.endswith("Z") for m in context.messages)
    assert len(sim.requests.find("GET", f"/Conversations/{conversation_sid}/Participants")) == 1


def test_card_numbers_are_redacted_in_the_context(sim):
    """With redact_pii, card numbers and codes never reach the context; without it they are copied."""
    conversation = sim.conversations.create_conversation()
    sim.conversations.add_participant(conversation.sid, identity="customer-9")
    sim.conversations.add_message(conversation.sid, "customer-9", "card 4111 1111 1111 1111 cvv 123, order 4417")
    sim.conversations.add_message(conversation.sid, "customer-9", None, content_sid="HX" + "1" * 32)
    gateway = gateway_for(sim)

    redacted = collect_context(gateway, conversation.sid, channel="chat", redact_pii=True, earlier_transfers=0)
    kept = collect_context(gateway, conversation.sid, channel="chat", redact_pii=False, earlier_transfers=0)
    assert [m.body for m in redacted.messages] == ["card [redacted] cvv [redacted], order 4417", MEDIA_BODY]
    assert kept.messages[0].body == "card 4111 1111 1111 1111 cvv 123, order 4417"


def test_email_context_keeps_the_subject_and_strips_quoted_history(sim):
    """An email conversation's context has the subject and each reply without the history it quotes."""
    conversation = sim.conversations.create_conversation()
    sim.conversations.add_participant(conversation.sid, address="chloe@example.com")
    sim.conversations.add_participant(conversation.sid, identity="alice", attributes={"member_type": "agent"})
    subject = {"subject": "Refund for order 4417"}
    sim.conversations.add_message(conversation.sid, "chloe@example.com", "<p>My order 4417 never came.</p>",
                                  attributes=subject, subject=subject["subject"])
    sim.conversations.add_message(
        conversation.sid, "alice", "We are sorry.\n\nOn Mon, 6 May 2024, Chloe <chloe@example.com> wrote:\n> old",
        attributes={"subject": "Re: Refund for order 4417"})
    sim.conversations.add_message(
        conversation.sid, "chloe@example.com",
        "<div>Still nothing, card 4111-1111-1111-1111.</div><div class=\"gmail_quote\">On Mon … wrote:"
        "<blockquote>We are sorry.</blockquote></div>", attributes={"subject": "Re: Refund for order 4417"})
    gateway = gateway_for(sim)

    context = collect_context(gateway, conversation.sid, channel="email", redact_pii=True, earlier_transfers=0)
    assert context.subject == "Re: Refund for order 4417"
    assert [(m.role, m.body) for m in context.messages] == [
        (CUSTOMER, "My order 4417 never came."), (AGENT, "We are sorry."),
        (CUSTOMER, "Still nothing, card [redacted].")]
    assert context.to_dict()["subject"] == "Re: Refund for order 4417"


def test_context_to_dict_is_the_transfer_attribute_shape():
    """The context serializes as the ``transfer.context`` attribute: messages, counts, subject when known."""
    context = Context((ContextMessage(CUSTOMER, "2024-05-01T10:00:00Z", "Hi"),), 7, 1)

    assert context.to_dict() == {"messages": [{"role": "customer", "at": "2024-05-01T10:00:00Z", "body": "Hi"}],
                                 "message_count": 7, "earlier_transfers": 1}
