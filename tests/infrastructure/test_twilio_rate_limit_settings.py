"""TWILIO_RATE_LIMITS and TWILIO_PACING_MAX_WAIT_S: Twilio's documented limits by default, changed or turned off by
the operator, every mistake named; and ``TwilioGateway.from_config`` pacing by them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from baton.infrastructure import twilio_gateway
from baton.infrastructure.config import DOCUMENTED_TWILIO_RATE_LIMITS, ConfigError, load_config
from baton.infrastructure.twilio_gateway import TwilioGateway

VALID = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "secret-token",
    "TWILIO_WORKSPACE_SID": "WS" + "0" * 32,
    "TRANSFER_WORKFLOW_SID": "WW" + "0" * 32,
    "PUBLIC_BASE_URL": "https://baton.example.com",
}


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config({**VALID, **environ})
    return caught.value.problems


def test_the_documented_limits_are_the_default():
    """Unset, Baton paces each Interactions endpoint at 20/s and filtered task lists at 3/s, waiting 1 s at most."""
    config = load_config(VALID)
    assert config.twilio_rate_limits == DOCUMENTED_TWILIO_RATE_LIMITS
    assert config.twilio_rate_limits["invites.create"] == 20 and config.twilio_rate_limits["tasks.list"] == 3
    assert config.twilio_pacing_max_wait_s == 1.0


def test_pairs_change_add_and_remove_endpoints():
    """``endpoint=rate`` pairs change a documented limit, add one read from Console, and 0 unpaces an endpoint."""
    config = load_config({**VALID, "TWILIO_RATE_LIMITS": "invites.create=10, tasks.update=25,tasks.list=0",
                          "TWILIO_PACING_MAX_WAIT_S": "0.5"})
    unchanged = {endpoint: rate for endpoint, rate in DOCUMENTED_TWILIO_RATE_LIMITS.items() if endpoint != "tasks.list"}
    assert config.twilio_rate_limits == {**unchanged, "invites.create": 10, "tasks.update": 25}
    assert config.twilio_pacing_max_wait_s == 0.5


def test_off_turns_pacing_off_and_the_gateway_has_no_pacer():
    """TWILIO_RATE_LIMITS=off leaves no limit, and the gateway then sends every request at once."""
    config = load_config({**VALID, "TWILIO_RATE_LIMITS": "off"})
    assert config.twilio_rate_limits == {}
    assert TwilioGateway.from_config(config).pacer is None


def test_the_gateway_paces_by_the_configured_limits():
    """From a configuration with limits, the gateway's pacer holds them, the account and the longest wait."""
    config = load_config({**VALID, "TWILIO_RATE_LIMITS": "tasks.update=25", "TWILIO_PACING_MAX_WAIT_S": "2"})
    pacer = TwilioGateway.from_config(config).pacer
    assert (pacer.limits["tasks.update"], pacer.account_sid, pacer.max_wait_s) == (25, VALID["TWILIO_ACCOUNT_SID"], 2)


@pytest.mark.parametrize("value", ["invites.create", "invites.create=fast", "Invites=20", "invites.create=-1",
                                   "invites.create=nan"])
def test_malformed_limits_are_named(value):
    """A pair without a rate, a rate that is not a non-negative number, or a name of the wrong shape is refused."""
    (problem,) = problems_of({"TWILIO_RATE_LIMITS": value})
    assert problem.startswith("TWILIO_RATE_LIMITS must be off, or endpoint=requests per second pairs")


def test_a_long_pacing_wait_is_refused():
    """A Twilio call may not wait for its turn longer than 5 s: a worker and a web request would hang."""
    assert problems_of({"TWILIO_PACING_MAX_WAIT_S": "30"}) == [
        "TWILIO_PACING_MAX_WAIT_S must be a number of seconds between 0 and 5"]


def test_every_documented_limit_names_an_endpoint_of_the_gateway():
    """Each default limit is keyed by a name the gateway calls Twilio under, so none is a typo that paces nothing."""
    source = Path(twilio_gateway.__file__).read_text()
    endpoints = set(re.findall(r'_call\(\s*"([a-z_]+\.[a-z_]+)"', source))
    assert set(DOCUMENTED_TWILIO_RATE_LIMITS) <= endpoints
