"""The conversation context a transfer carries, copied from Twilio within a budget.

``collect_context`` copies the newest messages of a conversation, newest first and page by page,
and stops as soon as it holds ``budget_chars`` of them: what it costs follows the budget, never the
conversation's length. ``baton.domain.attributes`` defines the copy (``Context``) and fits it on
the new task (``fit_attributes``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html.parser import HTMLParser

from baton.domain.attributes import (
    AGENT,
    ATTRIBUTES_LIMIT,
    CUSTOMER,
    SEPARATOR_CHARS,
    SYSTEM,
    Context,
    ContextMessage,
    json_length,
)
from baton.domain.redaction import redact
from baton.infrastructure.twilio_gateway import ConversationParticipant, Message, TwilioGateway

# Twilio's largest page of conversation messages.
MAX_PAGE_SIZE = 100
MEDIA_BODY = "[media]"
SUBJECT_MAX_CHARS = 200


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
