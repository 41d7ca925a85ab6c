import pytest

from simulator.core import ApiRequest, SimError
from simulator.params import (
    boolean_param,
    date_param,
    header,
    integer_param,
    list_param,
    parse_date,
    required_param,
    text_param,
)


def request(params=None, headers=None) -> ApiRequest:
    return ApiRequest("POST", "/v1/test", {}, params or {}, headers or {})


def test_a_scalar_read_from_several_values_is_the_last():
    """A scalar parameter given several times reads as its last value, as Twilio takes it."""
    assert text_param(request({"FriendlyName": ["first", "last"]}), "FriendlyName") == "last"


def test_an_absent_parameter_reads_as_none():
    """Every typed reader answers None for a parameter the request does not carry."""
    empty = request()
    assert [read(empty, "X") for read in (text_param, integer_param, boolean_param, date_param)] == [None] * 4
    assert list_param(empty, "X") == []


def test_a_missing_required_parameter_is_a_400_naming_it():
    """A required parameter that is absent or empty is refused with a 400 that names it."""
    with pytest.raises(SimError) as refused:
        required_param(request({"FriendlyName": ""}), "FriendlyName")
    assert (refused.value.status, refused.value.message) == (400, "Missing required parameter FriendlyName")


@pytest.mark.parametrize(("word", "expected"), [("true", True), ("Yes", True), ("1", True),
                                                ("false", False), ("NO", False), ("0", False)])
def test_booleans_are_the_words_listworker_documents(word, expected):
    """true/1/yes and false/0/no, in any case, are the booleans."""
    assert boolean_param(request({"Available": word}), "Available") is expected


def test_an_unreadable_integer_is_a_400():
    """A value that is not an integer is refused with a 400 naming the parameter."""
    with pytest.raises(SimError) as refused:
        integer_param(request({"Priority": "high"}), "Priority")
    assert refused.value.status == 400
    assert "'Priority'" in refused.value.message


def test_headers_are_found_whatever_their_case():
    """A header is read by its name in any case, as HTTP means it."""
    assert header(request(headers={"x-twilio-webhook-enabled": "true"}), "X-Twilio-Webhook-Enabled") == "true"


@pytest.mark.parametrize("text", ["2026-12-03T10:00:00Z", "2026-12-03T10:00:00", "2026-12-03T11:00:00+01:00"])
def test_a_date_without_a_zone_is_read_as_utc(text):
    """Dates with Z, without a zone or with an offset all read as the same UTC moment."""
    assert parse_date(text, "DateCreated") == 1796292000.0


def test_an_unreadable_date_is_a_400_naming_the_parameter():
    """A date that is not ISO 8601 is refused with a 400 that names the parameter."""
    with pytest.raises(SimError) as refused:
        parse_date("yesterday", "StartDate")
    assert refused.value.status == 400
    assert "'StartDate'" in refused.value.message
