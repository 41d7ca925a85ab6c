"""Redaction of card numbers, card security codes and SSNs; everything else left as it was."""

from __future__ import annotations

import io
import logging
import time

import pytest

from baton.domain.redaction import REDACTED, RedactingFilter, luhn_valid, redact, redact_value

R = REDACTED

CASES = [
    # Cards of every major brand, bare and with separators.
    ("Visa 4111111111111111", f"Visa {R}"),
    ("visa 4111 1111 1111 1111 exp 12/27", f"visa {R} exp 12/27"),
    ("4111-1111-1111-1111", R),
    ("Visa 13 digits 4222222222222", f"Visa 13 digits {R}"),
    ("4012 8888 8888 1881.", f"{R}."),
    ("Mastercard 5555555555554444", f"Mastercard {R}"),
    ("mc 5105-1051-0510-5100 thanks", f"mc {R} thanks"),
    ("Mastercard 2-series 2223 0031 2200 3222", f"Mastercard 2-series {R}"),
    ("2221000000000009", R),
    ("Amex 378282246310005", f"Amex {R}"),
    ("amex 3782 822463 10005", f"amex {R}"),
    ("AMEX 3714-496353-98431", f"AMEX {R}"),
    ("Discover 6011111111111117", f"Discover {R}"),
    ("discover 6011 0009 9013 9424", f"discover {R}"),
    ("JCB 3530111333300000", f"JCB {R}"),
    ("jcb 3566 0020 2036 0505", f"jcb {R}"),
    ("Diners 30569309025904", f"Diners {R}"),
    ("diners 3852 000002 3237", f"diners {R}"),
    ("UnionPay 6212345678900000003", f"UnionPay {R}"),
    ("unionpay 6212 3456 7890 0000 003", f"unionpay {R}"),
    ("Maestro 6759649826438453", f"Maestro {R}"),
    ("maestro 6799 9901 0000 0000 019", f"maestro {R}"),
    ("card:4111111111111111,thanks", f"card:{R},thanks"),
    ("my card is 4111 1111 1111 1111 and my phone (415) 555-0100",
     f"my card is {R} and my phone (415) 555-0100"),
    ("call 415 555 0100 4111 1111 1111 1111", f"call {R}"),
    ("4111 1111 1111 1111 2", R),
    ("cards 4111111111111111 and 5555555555554444", f"cards {R} and {R}"),
    # Digit runs that are not Luhn-valid cards stay.
    ("4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("order 4417 never arrived", "order 4417 never arrived"),
    ("ticket #1234567890123", "ticket #1234567890123"),
    ("tracking 12345678901234567890123", "tracking 12345678901234567890123"),
    ("call me on +1 415 555 0100", "call me on +1 415 555 0100"),
    ("or (415) 555-0100, or 415-555-0100", "or (415) 555-0100, or 415-555-0100"),
    ("Brazil +55 11 91234 5678", "Brazil +55 11 91234 5678"),
    ("delivered 2024-01-05 at 10:30", "delivered 2024-01-05 at 10:30"),
    ("invoice 2024-000123 total 1499.99", "invoice 2024-000123 total 1499.99"),
    ("4111  1111  1111  1111", "4111  1111  1111  1111"),
    # Security codes next to each keyword, and only there.
    ("cvv 123", f"cvv {R}"),
    ("CVV: 123", f"CVV: {R}"),
    ("cvv2=4567", f"cvv2={R}"),
    ("my CVC is 987", f"my CVC is {R}"),
    ("Security Code: 321", f"Security Code: {R}"),
    ("the security code is 0042", f"the security code is {R}"),
    ("cvv number is 555", f"cvv number is {R}"),
    ("123 is my cvv", f"{R} is my cvv"),
    ("card ending 1111 security code 123", f"card ending 1111 security code {R}"),
    ("cvv 12345", "cvv 12345"),
    ("I waited 123 minutes", "I waited 123 minutes"),
    ("exp 12/27 cvc 999 zip 94107", f"exp 12/27 cvc {R} zip 94107"),
    # US social security numbers.
    ("SSN 123-45-6789", f"SSN {R}"),
    ("my social security number is 123456789", f"my social security number is {R}"),
    ("ssn: 123 45 6789", f"ssn: {R}"),
    ("it is 078-05-1120 I think", f"it is {R} I think"),
    ("order 123456789", "order 123456789"),
    ("part 12-123-45-6789", "part 12-123-45-6789"),
    # Text around is untouched, unicode included.
    ("Merci 🙏 carte 4111 1111 1111 1111 — voilà", f"Merci 🙏 carte {R} — voilà"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_redact(text, expected):
    """Cards, security codes and SSNs become [redacted]; order numbers, phones and dates stay."""
    assert redact(text) == expected


def test_table_is_large_enough():
    """The table covers at least forty cases."""
    assert len(CASES) >= 40


def test_luhn():
    """The Luhn check accepts a card's check digit and refuses any other."""
    assert luhn_valid("4111111111111111")
    assert not any(luhn_valid(f"411111111111111{digit}") for digit in "023456789")


def test_redact_value_walks_nested_structures():
    """Strings anywhere in dicts, lists and tuples are redacted; keys and non-strings are kept."""
    value = {"notes": "card 4111111111111111", "context": {"messages": [{"body": "cvv 123", "n": 3}]},
             "pair": ("ssn 123-45-6789", None), "4111111111111111": True}

    assert redact_value(value) == {
        "notes": f"card {R}", "context": {"messages": [{"body": f"cvv {R}", "n": 3}]},
        "pair": (f"ssn {R}", None), "4111111111111111": True}


@pytest.mark.parametrize("text", [
    "1 " * 16_384,
    "1-" * 16_384,
    "9" * 32_768,
    "cvv " * 8_192,
    "cvv: is is is " * 2_340,
    "ssn " * 8_192,
    ("order 4417 card 4111 1111 1111 1111 phone +1 415 555 0100 " * 600)[:32_768],
])
def test_redact_is_fast_on_32_kb(text):
    """A 32 KB body is redacted in well under a second, whatever its shape."""
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 0.5


def test_log_records_are_redacted_by_the_handler_filter():
    """A handler with the filter writes no card number, whether in the message, its arguments or a traceback."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("baton.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("notes: %s", "card 4111 1111 1111 1111, order 4417")
        try:
            raise ValueError("cvv 123 for 5555555555554444")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)

    written = stream.getvalue()
    assert f"notes: card {R}, order 4417" in written and f"ValueError: cvv {R} for {R}" in written
    assert "4111" not in written and "5555555555554444" not in written and "cvv 123" not in written


def test_digits_inside_identifiers_are_left_alone():
    """A Luhn-valid digit run inside a sid or hex id is part of the id, not a card number."""
    sid = "WT" + "4111111111111111" + "abcdef0123456789"
    assert redact(f"task {sid} moved") == f"task {sid} moved"
    assert redact("card 4111111111111111.") == "card [redacted]."
