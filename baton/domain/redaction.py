"""PCI and SSN redaction: what Baton copies, stores or logs never holds a card number.

``redact(text)`` replaces card numbers (Luhn-valid runs of 13–19 digits, written with or without
single spaces or dashes between groups), card security codes written next to "cvv", "cvc",
"cvv2" or "security code", and US social security numbers with ``[redacted]``. Order numbers,
phone numbers, dates and other digit runs that are not Luhn-valid card numbers stay as they are.

Every pattern is precompiled and none nests unbounded quantifiers, so a 32 KB chat body is
scanned in linear time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

MIN_CARD_DIGITS, MAX_CARD_DIGITS = 13, 19

# Digit groups joined by single spaces or dashes. A separator is required between two groups, so
# each run has exactly one way to match (no backtracking blow-up on long digit strings). Digits
# touching letters belong to an identifier (a Twilio sid, a hex id), never to a card number.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d+(?:[ -]\d+)*(?![0-9A-Za-z])")
_SEPARATOR = re.compile(r"[ -]")

# What may stand between a keyword and its number: a few punctuation characters and filler words
# ("CVV: 123", "cvv2=4567", "security code is 123", "SSN #: 123-45-6789").
_GAP = r"[^\w\n]{0,4}(?:(?:is|was|number|num|no|code|cvv2?|cvc2?)[^\w\n]{1,4}){0,2}"
_CODE_KEYWORD = r"(?:cvv2|cvc2|cvv|cvc|security[ \t]{1,3}code)"
_CODE_AFTER_KEYWORD = re.compile(rf"(?P<lead>\b{_CODE_KEYWORD}\b{_GAP})\d{{3,4}}(?!\d)", re.IGNORECASE)
# The other way round only when the wording ties the number to the keyword ("123 (cvv)", "123 is my
# cvv"): "card ending 1111 security code 123" must keep the last four digits, which are not secret.
_CODE_BEFORE_KEYWORD = re.compile(
    rf"(?<![\w-])\d{{3,4}}(?P<trail>(?:[ \t]{{0,2}}\([ \t]{{0,2}}"
    rf"|[ \t]{{1,3}}(?:is|was)[ \t]{{1,3}}(?:my|the)[ \t]{{1,3}}){_CODE_KEYWORD}\b)", re.IGNORECASE)
_SSN_DASHED = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?!\d|-\d)")
_SSN_AFTER_KEYWORD = re.compile(
    rf"(?P<lead>\b(?:ssn|social[ \t]{{1,3}}security(?:[ \t]{{1,3}}(?:number|no))?)\b{_GAP})"
    r"\d{3}[ -]?\d{2}[ -]?\d{4}(?!\d)", re.IGNORECASE)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check that every payment card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _holds_card(run: str) -> bool:
    """Whether a run of digit groups is, or contains, a Luhn-valid card number.

    Without separators only the whole run counts. With them, every span of whole groups of 13–19
    digits counts, so a card written next to another number ("… 0100 4111 1111 1111 1111") is
    found too; the whole run is then redacted rather than leave part of a card behind.
    """
    groups = _SEPARATOR.split(run)
    digits = "".join(groups)
    if len(groups) == 1:
        return MIN_CARD_DIGITS <= len(digits) <= MAX_CARD_DIGITS and luhn_valid(digits)
    if len(digits) < MIN_CARD_DIGITS:
        return False
    # Luhn sums of every span from prefix sums, so a long run costs linear time, not quadratic.
    # In a span ending at digit e-1, digit i is doubled when i and e-1 differ in parity.
    prefix = ([0], [0])
    for index, char in enumerate(digits):
        digit = ord(char) - 48
        doubled = digit * 2 - 9 if digit > 4 else digit * 2
        prefix[0].append(prefix[0][-1] + (digit if index % 2 == 0 else doubled))
        prefix[1].append(prefix[1][-1] + (digit if index % 2 == 1 else doubled))
    bounds = [0]
    for group in groups:
        bounds.append(bounds[-1] + len(group))
    for first in range(len(groups)):
        for last in range(first + 1, len(bounds)):
            start, end = bounds[first], bounds[last]
            if end - start > MAX_CARD_DIGITS:
                break
            sums = prefix[(end - 1) % 2]
            if end - start >= MIN_CARD_DIGITS and (sums[end] - sums[start]) % 10 == 0:
                return True
    return False


def _redact_run(match: re.Match[str]) -> str:
    run = match.group()
    # International phone numbers are written after "+"; a card number never is.
    if match.start() > 0 and match.string[match.start() - 1] == "+":
        return run
    return REDACTED if _holds_card(run) else run


def redact(text: str) -> str:
    """``text`` with card numbers, card security codes and US SSNs replaced by ``[redacted]``."""
    text = _DIGIT_RUN.sub(_redact_run, text)
    text = _SSN_DASHED.sub(REDACTED, text)
    text = _SSN_AFTER_KEYWORD.sub(lambda m: m["lead"] + REDACTED, text)
    text = _CODE_AFTER_KEYWORD.sub(lambda m: m["lead"] + REDACTED, text)
    return _CODE_BEFORE_KEYWORD.sub(lambda m: REDACTED + m["trail"], text)


def redact_value(value: Any) -> Any:
    """``value`` with ``redact`` applied to every string in it, through dicts, lists and tuples.

    Keys are kept as they are; other values (numbers, None, booleans) pass unchanged.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


class RedactingFilter(logging.Filter):
    """Redacts each log record's message, with its arguments merged in, and its traceback.

    Attach it to the handlers: a logger's own filters do not see the records its children
    propagate to it, a handler's see every record it writes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
