"""The conversation context a transfer carries, and the budget that fits it on the new task.

``collect_context`` copies the newest messages of a conversation, newest first and page by page,
and stops as soon as it holds ``budget_chars`` of them: what it costs follows the budget, never the
conversation's length. ``fit_attributes`` then makes the new task's attributes fit TaskRouter's
limit, shedding context, summary and notes in that order and never touching the copied attributes
or the routing keys. The transfer record keeps the whole context; only the task's copy is cut.

Sizes are measured as ``stored_length`` defines them: the JSON text TaskRouter would store, at the
longest it can be, whoever serializes it (Flex, for an invite's task).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

from baton.redaction import redact
from baton.twilio_gateway import ConversationParticipant, Message, TwilioGateway

# TaskRouter's limit on a task's attributes, in characters of the JSON text it stores.
ATTRIBUTES_LIMIT = 4096
# The keys Flex sets on the task an invite creates, each with a value as long as it can be. The
# original task's copy has most of them already, with the same values (the invite is on the same
# channel): only the ones it lacks make the task longer.
FLEX_INVITE_KEYS = {
    "flexChannelInviteSid": "KG" + "0" * 32,
    "conversationSid": "CH" + "0" * 32,
    "flexInteractionSid": "KD" + "0" * 32,
    "flexInteractionChannelSid": "UO" + "0" * 32,
    # Its values are undocumented; a short name, allowed a sid's length.
    "flexInteractionType": "x" * 34,
}
# Between two items of a JSON array or object, in the stored form.
SEPARATOR_CHARS = len(", ")
# Twilio's largest page of conversation messages.
MAX_PAGE_SIZE = 100

CUSTOMER, AGENT, SYSTEM = "customer", "agent", "system"
BODY_CUT = "…[cut]"
NOTES_CUT = "…[notes cut]"
MEDIA_BODY = "[media]"
# A text shortened below this many characters says too little to be worth its room: it is dropped.
MIN_KEPT_CHARS = 40
SUBJECT_MAX_CHARS = 200


class AttributesTooLarge(ValueError):
    """The copied attributes and routing keys alone exceed the limit: no transfer task can carry them."""

    code = "attributes_too_large"

    def __init__(self, length: int, limit: int):
        super().__init__(f"the original task's attributes and the routing keys take {length} characters, "
                         f"over TaskRouter's limit of {limit}")
        self.length = length
        self.limit = limit


def json_length(value: Any) -> int:
    """The length of ``value`` (any JSON value, e.g. a part of the attributes) in the stored form.

    That form is Python's default ``json.dumps``: ", " and ": " between items, non-ASCII escaped
    (an accented letter takes 6 characters, an emoji 12). It is the longest a JSON serializer
    plausibly writes, so whatever Flex or TaskRouter uses, the text stored is never longer. It is
    also additive: a value nested anywhere takes the same characters as on its own.
    """
    return len(json.dumps(value))


def stored_length(attributes: Mapping[str, Any]) -> int:
    """The stored size of task attributes: what TaskRouter counts against ATTRIBUTES_LIMIT, at worst.

    The attributes in the stored form (``json_length``), plus every key of FLEX_INVITE_KEYS they
    lack, since Flex adds those to an invite's task. For a task update, which Baton sends itself
    (compact, ``serialize_attributes``), this is an upper bound too.
    """
    return json_length({**FLEX_INVITE_KEYS, **attributes})


@dataclass(frozen=True)
class ContextMessage:
    """One copied message: who wrote it (customer, agent or system), when (ISO 8601, UTC), and what."""

    role: str
    at: str | None
    body: str

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "at": self.at, "body": self.body}


@dataclass(frozen=True)
class Context:
    """The newest messages of a conversation, as the next agent should see them.

    messages: oldest first.
    message_count: messages ever posted in the conversation (the newest message's index + 1).
    earlier_transfers: transfers this conversation went through before this one.
    subject: the email subject, for an email conversation whose messages carry one.
    """

    messages: tuple[ContextMessage, ...]
    message_count: int
    earlier_transfers: int
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``context`` of the ``transfer`` attribute (``subject`` only when there is one)."""
        data: dict[str, Any] = {"messages": [message.to_dict() for message in self.messages],
                                "message_count": self.message_count, "earlier_transfers": self.earlier_transfers}
        if self.subject is not None:
            data["subject"] = self.subject
        return data


# The smallest a copied message can be ({"role": "agent", "at": null, "body": ""} and its separator).
_MIN_MESSAGE_CHARS = json_length(ContextMessage(AGENT, None, "").to_dict()) + SEPARATOR_CHARS


def page_size_for(budget_chars: int) -> int:
    """The page size at which one page holds a budget's worth of even the smallest messages.

    Capped at Twilio's largest page: a budget of up to 100 of the smallest messages (4,300
    characters, so the attribute limit of 4,096 too) is met within one request.
    """
    return max(1, min(MAX_PAGE_SIZE, -(-budget_chars // _MIN_MESSAGE_CHARS)))


def collect_context(gateway: TwilioGateway, conversation_sid: str, *, channel: str, redact_pii: bool,
                    earlier_transfers: int, agent_identities: Collection[str] = (),
                    participants: Sequence[ConversationParticipant] | None = None,
                    budget_chars: int = ATTRIBUTES_LIMIT, page_size: int | None = None) -> Context:
    """The newest messages of a conversation, up to ``budget_chars`` of serialized context.

    Messages are read newest first and reading stops with the message that fills the budget (it
    is kept whole: ``fit_attributes`` shortens it if it has to), so the requests made depend on
    the budget, not on the conversation's length. Authors are told apart by the conversation's
    participants (listed unless the caller passes ``participants``): an identity in
    ``agent_identities`` (Flex's identity of a worker: its contact_uri without ``client:``), or a
    participant whose attributes say ``member_type: agent``, is an agent; any other participant is
    the customer; an author who is no participant is an agent who has left if the message names a
    participant, and the system (a bot, Studio, the API) otherwise.

    For ``channel == "email"``, bodies are turned from HTML to text without quoted history, and
    the subject is taken from the newest message whose attributes hold one (Conversations' message
    resource does not show the ``Subject`` of an email, its attributes do). With ``redact_pii``,
    bodies and subject are redacted before they are kept anywhere.
    """
    if participants is None:
        participants = gateway.list_conversation_participants(conversation_sid)
    roles = _author_roles(participants, agent_identities)
    email = channel == "email"
    newest_first: list[ContextMessage] = []
    message_count, used, subject = 0, 0, None
    for message in gateway.recent_messages(conversation_sid, page_size or page_size_for(budget_chars)):
        if not newest_first:
            message_count = message.index + 1
        body = MEDIA_BODY if message.body is None else (email_text(message.body) if email else message.body.strip())
        if email and subject is None:
            subject = _subject(message)
        copied = ContextMessage(_role(message, roles), _iso(message.date_created),
                                redact(body) if redact_pii else body)
        newest_first.append(copied)
        used += json_length(copied.to_dict()) + SEPARATOR_CHARS
        if used >= budget_chars:
            break
    if subject is not None and redact_pii:
        subject = redact(subject)
    return Context(tuple(reversed(newest_first)), message_count, earlier_transfers, subject)


def _author_roles(participants: Iterable[ConversationParticipant], agent_identities: Collection[str]
                  ) -> dict[str, str]:
    """Role by author: a message's author is its participant's identity, or its address (SMS, email)."""
    roles = {identity: AGENT for identity in agent_identities}
    for participant in participants:
        is_agent = participant.identity in roles or participant.attributes.get("member_type") == "agent"
        for author in (participant.identity, participant.address):
            if author:
                roles[author] = AGENT if is_agent else CUSTOMER
    return roles


def _role(message: Message, roles: Mapping[str, str]) -> str:
    role = roles.get(message.author)
    if role is not None:
        return role
    # Posted by a participant who has since left: agents leave on transfer and wrap-up, while the
    # customer stays in their conversation until it ends.
    return AGENT if message.participant_sid else SYSTEM


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subject(message: Message) -> str | None:
    # Read defensively: the gateway's Message carries the message attributes once the context
    # integration adds them; without them no subject is found.
    subject = (getattr(message, "attributes", None) or {}).get("subject")
    if not isinstance(subject, str) or not subject.strip():
        return None
    return " ".join(subject.split())[:SUBJECT_MAX_CHARS]


# Email bodies

_LOOKS_LIKE_HTML = re.compile(r"<(?:html|body|div|p|br|span|table|blockquote|font|b|i|a)\b", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_ON_WROTE = re.compile(r"^On\b.{0,300}\bwrote:\s*$")
_ORIGINAL_MESSAGE = re.compile(r"^(?:-{2,}\s*(?:Original|Forwarded) Message\s*-{2,}|_{10,})$", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """The visible text of an HTML email, without scripts, styles and quoted replies."""

    BLOCKS = frozenset({"p", "div", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "hr"})
    HIDDEN = frozenset({"script", "style", "head", "title", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_tag: str | None = None
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden_tag == "head" and tag == "body":
            # HTML lets </head> be left out; the body still shows.
            self._hidden_tag = None
        if self._hidden_tag is not None:
            self._hidden_depth += tag == self._hidden_tag
            return
        classes = " ".join(value or "" for name, value in attrs if name in ("class", "id"))
        # Gmail and Outlook wrap the quoted history of a reply in these.
        if tag in self.HIDDEN or "gmail_quote" in classes or "divRplyFwdMsg" in classes:
            self._hidden_tag, self._hidden_depth = tag, 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "br" or tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._hidden_tag is not None:
            if tag == self._hidden_tag:
                self._hidden_depth -= 1
                if self._hidden_depth == 0:
                    self._hidden_tag = None
            return
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden_tag is None:
            self.parts.append(data)


def email_text(body: str) -> str:
    """An email body as plain text: HTML turned into text, quoted history and signature quotes removed.

    Quoted history is every line starting with ">", and everything from an "On … wrote:" line (which
    mail clients may wrap over two lines) or an "-----Original Message-----" separator onwards.
    """
    if _LOOKS_LIKE_HTML.search(body):
        extractor = _TextExtractor()
        extractor.feed(body)
        extractor.close()
        body = "".join(extractor.parts)
    lines = [_SPACES.sub(" ", line).strip() for line in body.splitlines()]
    kept: list[str] = []
    for number, line in enumerate(lines):
        joined = f"{line} {lines[number + 1]}" if number + 1 < len(lines) else line
        if _ORIGINAL_MESSAGE.match(line) or _ON_WROTE.match(line) or (line.startswith("On ")
                                                                          and _ON_WROTE.match(joined)):
            break
        if not line.startswith(">"):
            kept.append(line)
    return _BLANK_LINES.sub("\n\n", "\n".join(kept)).strip()


# The attribute budget

def fit_attributes(base: Mapping[str, Any], transfer: Mapping[str, Any], *, limit: int = ATTRIBUTES_LIMIT
                   ) -> dict[str, Any]:
    """``base`` plus ``transfer`` under the key ``transfer``, cut to a ``stored_length`` of at most ``limit``.

    ``base`` is the copied original attributes with the routing keys: it is a contract and is never
    cut (a ``transfer`` key in it, from an earlier transfer, is replaced). ``transfer`` is the
    transfer object with ``notes``, ``summary`` and ``context`` (``Context.to_dict()`` or None).
    What does not fit is shed in this order: the oldest context messages (down to the newest);
    the newest message's body, shortened with ``BODY_CUT``, then that message; the summary,
    shortened with ``BODY_CUT``, then dropped; the context itself (counts and subject); and last
    the notes, cut with ``NOTES_CUT``. Notes that fit next to ``base`` are always kept whole.

    Raises AttributesTooLarge when ``base`` with a transfer object holding no notes, summary or
    context is already over the limit.
    """
    context = transfer.get("context")
    messages: list[dict[str, Any]] = list(context.get("messages") or ()) if context else []
    summary: str | None = transfer.get("summary")
    notes: str | None = transfer.get("notes")

    def assemble(kept: Sequence[dict[str, Any]] | None, summary: str | None, notes: str | None) -> dict[str, Any]:
        fitted_context = None if kept is None or context is None else {**context, "messages": list(kept)}
        return {**base, "transfer": {**transfer, "notes": notes, "summary": summary, "context": fitted_context}}

    # Lengths add up: replacing a value in the skeleton changes the total by the difference of the
    # two values' lengths (``json_length``), so each step below costs the size of what it measures.
    bare = stored_length(assemble(None, None, None))
    if bare > limit:
        raise AttributesTooLarge(bare, limit)
    room = limit - (stored_length(assemble([], None, None)) if context is not None else bare)
    lengths = [json_length(message) for message in messages]
    summary_extra = json_length(summary) - 4  # over "null"
    notes_extra = json_length(notes) - 4
    need = sum(lengths) + max(0, len(lengths) - 1) * SEPARATOR_CHARS + summary_extra + notes_extra

    first = 0
    while need > room and len(messages) - first > 1:
        need -= lengths[first] + SEPARATOR_CHARS
        first += 1
    kept = messages[first:]
    if need > room and kept:
        newest = kept[0]
        body = newest.get("body") or ""
        shortened = _shortened(body, BODY_CUT, json_length(body) - (need - room), MIN_KEPT_CHARS)
        if shortened is None:
            need -= lengths[first]
            kept = []
        else:
            need -= json_length(body) - json_length(shortened)
            kept = [{**newest, "body": shortened}]
    if need > room and summary is not None:
        shortened = _shortened(summary, BODY_CUT, json_length(summary) - (need - room), MIN_KEPT_CHARS)
        need -= json_length(summary) - json_length(shortened)
        summary = shortened
    fitted_kept: list[dict[str, Any]] | None = kept
    if need > room and context is not None:
        room = limit - bare
        fitted_kept = None
    if need > room and notes is not None:
        notes = _shortened(notes, NOTES_CUT, json_length(notes) - (need - room), 0)
    return assemble(fitted_kept, summary, notes)


def _shortened(text: str, marker: str, room: int, minimum: int) -> str | None:
    """The longest ``text[:k] + marker`` (k ≥ ``minimum``) whose ``json_length`` is at most ``room``, or None.

    A binary search over k: the length grows with k, and JSON escapes make it uneven.
    """
    def fits(k: int) -> bool:
        return json_length(text[:k] + marker) <= room

    if len(text) <= minimum or not fits(minimum):
        return None
    low, high = minimum, len(text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return text[:low] + marker
