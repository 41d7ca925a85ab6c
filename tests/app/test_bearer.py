"""The one parser of ``Authorization: Bearer <token>``, shared by the agent API, the admin API and ``/metrics``."""

from __future__ import annotations

import pytest

from app.auth import parse_bearer


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc.DEF-123_x", "abc.DEF-123_x"),
    ("bearer abc", "abc"),
    ("BEARER   abc  ", "abc"),
])
def test_a_bearer_header_gives_its_token_whatever_the_schemes_case_and_the_spaces_around(header, token):
    """The scheme is matched in any case and the spaces around the token are dropped."""
    assert parse_bearer(header) == token


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer    ", "Basic YWxhZGRpbjpvcGVu", "Token abc", "Bearer a b",
                                    "Bearerabc"])
def test_anything_but_one_bearer_token_gives_none(header):
    """No header, another scheme, no token, or a token with a space in it (RFC 6750 allows none) is no bearer."""
    assert parse_bearer(header) is None
