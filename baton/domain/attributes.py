"""The transfer task's attributes: the conversation context they carry, and the budget that fits them.

``fit_attributes`` makes the new task's attributes fit TaskRouter's limit, shedding context,
summary and notes in that order and never touching the copied attributes or the routing keys.
The transfer record keeps the whole context; only the task's copy is cut. ``Context`` is the
copy of a conversation's newest messages that the transfer object carries
(``baton.infrastructure.context`` collects it from Twilio).

Sizes are measured as ``stored_length`` defines them: the JSON text TaskRouter would store, at the
longest it can be, whoever serializes it (Flex, for an invite's task).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

# Who wrote a copied message.
CUSTOMER, AGENT, SYSTEM = "customer", "agent", "system"

# The marks left where a text was cut to fit.
BODY_CUT = "…[cut]"
NOTES_CUT = "…[notes cut]"
# A text shortened below this many characters says too little to be worth its room: it is dropped.
MIN_KEPT_CHARS = 40


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


def serialize_attributes(attributes: Mapping[str, Any]) -> str:
    """Task attributes as Baton sends them to TaskRouter in a task update: compact JSON, non-ASCII escaped.

    TaskRouter counts the characters of the JSON text it stores, whitespace included. With
    ``ensure_ascii`` (json's default) an accented letter takes 6 characters and an emoji 12, never
    less than any other way of counting (code points, UTF-16 units, UTF-8 bytes). ``stored_length``
    measures the spaced form, which is longer: what Baton sends never exceeds what it measured.
    """
    return json.dumps(attributes, separators=(",", ":"))


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
