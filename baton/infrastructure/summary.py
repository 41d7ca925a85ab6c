"""Summaries of a conversation for the agent who receives a transfer.

Two providers behind one interface: ``extractive`` (offline and deterministic: the customer's stated
reason, key references, the last exchange, how long the conversation has run) and ``openai`` (any
OpenAI-compatible chat-completions endpoint), which falls back to ``extractive`` on any error or
timeout and says why, for the transfer's timeline.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests

from baton.domain.attributes import AGENT, CUSTOMER, Context, ContextMessage
from baton.domain.redaction import redact
from baton.infrastructure.config import Config

log = logging.getLogger(__name__)

SUMMARY_MAX_CHARS = 600
CONNECT_TIMEOUT_S = 3.05
MAX_REFERENCES = 4
# Room per line, chosen so that the longest possible lines together stay under SUMMARY_MAX_CHARS.
REASON_CHARS, SUBJECT_CHARS, REFERENCES_CHARS, LAST_MESSAGE_CHARS = 120, 60, 100, 80
# Bounds on what is sent to the LLM: the context is already budgeted, but one email body may be long.
PROMPT_BODY_CHARS = 1500
PROMPT_CHARS = 12_000

_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings|dear \w+|thanks|thank you)\b"
    r"(?:[ \t]+(?:there|team|all|folks|again)\b)?[\s,.!:;-]*)+", re.IGNORECASE)
_REFERENCE = re.compile(
    r"\b(?P<kind>order|account|acct|ticket|case|invoice|booking|reservation|reference|ref|tracking|confirmation)"
    r"(?:[ \t]+(?:number|no\.?|num|id))?[ \t]*(?:#|:|is)?[ \t]*#?"
    r"(?P<value>(?=[A-Za-z0-9-]{0,24}\d)[A-Za-z0-9][A-Za-z0-9-]{2,24})\b", re.IGNORECASE)
_HASH_REFERENCE = re.compile(r"(?<![\w#])#(?P<value>\d{3,20})\b")

_SYSTEM_PROMPT = (
    "You summarize a customer-service conversation for the agent who is taking it over. "
    "Write at most four short lines, under 600 characters in all, in plain text: the customer's reason "
    "for contacting us, key facts such as order, account or ticket references, what was said last, "
    "and what is still to do. No greeting, no preamble. Never repeat payment card data."
)


@dataclass(frozen=True)
class SummaryResult:
    """A summary, the provider that wrote it, and why the configured provider was not used (or None)."""

    text: str
    provider: str
    fallback_reason: str | None = None


class Summarizer(Protocol):
    """Writes the summary of a transfer's context; ``notes`` are the sending agent's, if any."""

    def summarize(self, context: Context, *, notes: str | None) -> SummaryResult: ...


def _clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters, cut at a word with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _parse_time(at: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ExtractiveSummarizer:
    """A summary picked out of the messages themselves: offline, instant and always the same for the same context.

    Notes are not repeated: they travel next to the summary on the task.
    """

    name = "extractive"

    def summarize(self, context: Context, *, notes: str | None) -> SummaryResult:
        """At most ``SUMMARY_MAX_CHARS`` characters: reason, subject, references, last exchange, history."""
        lines = []
        reason = self._reason(context.messages)
        if reason:
            lines.append(f"Reason: {_clip(reason, REASON_CHARS)}")
        if context.subject:
            lines.append(f"Subject: {_clip(context.subject, SUBJECT_CHARS)}")
        references = self._references(context.messages)
        if references:
            lines.append(f"References: {_clip(', '.join(references), REFERENCES_CHARS)}")
        last = self._last_exchange(context.messages)
        if last:
            lines.append(f"Last: {last}")
        lines.append(f"History: {self._history(context)}")
        return SummaryResult(_clip_lines("\n".join(lines), SUMMARY_MAX_CHARS), self.name)

    @staticmethod
    def _reason(messages: tuple[ContextMessage, ...]) -> str | None:
        """The customer's first message that says more than a greeting."""
        for message in messages:
            if message.role != CUSTOMER:
                continue
            stated = _GREETING.sub("", message.body.strip())
            if len(stated.split()) >= 3:
                return stated[:1].upper() + stated[1:]
        return None

    @staticmethod
    def _references(messages: tuple[ContextMessage, ...]) -> list[str]:
        found: dict[str, str] = {}
        for message in messages:
            for match in _REFERENCE.finditer(message.body):
                kind = match["kind"].lower()
                found.setdefault(match["value"].lower(), f"{'ref' if kind == 'reference' else kind} {match['value']}")
            for match in _HASH_REFERENCE.finditer(message.body):
                found.setdefault(match["value"].lower(), f"#{match['value']}")
        return list(found.values())[:MAX_REFERENCES]

    @staticmethod
    def _last_exchange(messages: tuple[ContextMessage, ...]) -> str | None:
        """The last customer message and the last agent message, in the order they were written."""
        last: dict[str, tuple[int, ContextMessage]] = {}
        for position, message in enumerate(messages):
            if message.role in (CUSTOMER, AGENT) and message.body:
                last[message.role] = (position, message)
        if not last:
            return None
        in_order = [message for _, message in sorted(last.values(), key=lambda item: item[0])]
        return " / ".join(f'{message.role}: "{_clip(message.body, LAST_MESSAGE_CHARS)}"' for message in in_order)

    @staticmethod
    def _history(context: Context) -> str:
        count = context.message_count
        text = f"{count} message{'s' if count != 1 else ''}"
        times = [moment for moment in (_parse_time(m.at) for m in context.messages) if moment is not None]
        if len(times) >= 2:
            span = _duration((times[-1] - times[0]).total_seconds())
            shown = len(context.messages)
            text += f" over {span}" if shown >= count else f", the last {shown} over {span}"
        if context.earlier_transfers:
            plural = "s" if context.earlier_transfers != 1 else ""
            text += f"; {context.earlier_transfers} earlier transfer{plural}"
        return text


def _clip_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def chat_completions_url(url: str) -> str:
    """The chat-completions endpoint for ``SUMMARY_LLM_URL``.

    The variable may name the endpoint itself (``https://host/v1/chat/completions``, query string
    kept, e.g. Azure's ``api-version``) or the API's base URL (``https://api.openai.com/v1``), to
    which ``/chat/completions`` is appended.
    """
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/chat/completions"):
        return url
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))


@dataclass(frozen=True)
class OpenAISummarizer:
    """A summary from an OpenAI-compatible chat-completions endpoint, or the fallback's when it fails.

    The request carries only redacted text, whatever the ``redact_pii`` setting (the endpoint is a
    third party), and the key only in ``Authorization: Bearer``. Nothing of the key, the prompt or
    the answer is logged. ``timeout_s`` bounds the connection and each read of the answer.
    """

    url: str
    api_key: str | None
    model: str
    timeout_s: float = 8.0
    fallback: Summarizer = field(default_factory=ExtractiveSummarizer)

    name = "openai"

    def summarize(self, context: Context, *, notes: str | None) -> SummaryResult:
        """The LLM's summary, redacted and clipped; on any failure the fallback's, with the reason."""
        try:
            response = requests.post(
                chat_completions_url(self.url), json=self._request(context, notes), headers=self._headers(),
                timeout=(min(CONNECT_TIMEOUT_S, self.timeout_s), self.timeout_s))
        except requests.Timeout:
            return self._fall_back(context, notes, f"LLM timed out after {self.timeout_s:g} s")
        except requests.RequestException as exc:
            return self._fall_back(context, notes, f"LLM unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            return self._fall_back(context, notes, f"LLM answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            return self._fall_back(context, notes, "LLM answer was not JSON")
        text = _completion_text(answer)
        if not text:
            return self._fall_back(context, notes, "LLM answer held no summary text")
        return SummaryResult(_clip_lines(redact(text.strip()), SUMMARY_MAX_CHARS), self.name)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _request(self, context: Context, notes: str | None) -> dict[str, Any]:
        # Only the two fields every compatible endpoint takes: some models refuse "temperature" or
        # "max_tokens", and the answer's length is bounded here anyway.
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": _SYSTEM_PROMPT},
                         {"role": "user", "content": _prompt(context, notes)}],
        }

    def _fall_back(self, context: Context, notes: str | None, reason: str) -> SummaryResult:
        log.warning("summary: %s; falling back", reason)
        result = self.fallback.summarize(context, notes=notes)
        return SummaryResult(result.text, result.provider, reason)


def _prompt(context: Context, notes: str | None) -> str:
    """The conversation as the LLM reads it, every piece redacted, newest lines kept when too long."""
    header = [f"Messages in the conversation: {context.message_count}; earlier transfers: {context.earlier_transfers}"]
    if context.subject:
        header.append(f"Email subject: {redact(context.subject)}")
    if notes:
        header.append(f"Notes from the transferring agent: {redact(notes)}")
    # Redacted before being shortened: a cut through a card number would hide it from redaction.
    lines = [f"[{message.at or '?'}] {message.role}: {redact(message.body)[:PROMPT_BODY_CHARS]}"
             for message in context.messages]
    size = sum(len(line) + 1 for line in header + lines)
    while lines and size > PROMPT_CHARS:
        size -= len(lines.pop(0)) + 1
    return "\n".join(header + ["Transcript, oldest first:"] + lines)


def _completion_text(answer: Any) -> str | None:
    """``choices[0].message.content`` of a chat-completions answer, or None if it is not there."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) and content.strip() else None


def summarizer_for(config: Config) -> Summarizer:
    """The summarizer ``SUMMARY_PROVIDER`` names (``load_config`` checks the LLM variables are set)."""
    if config.summary_provider == "openai":
        return OpenAISummarizer(config.summary_llm_url or "", config.summary_llm_api_key,
                                config.summary_llm_model or "")
    return ExtractiveSummarizer()
