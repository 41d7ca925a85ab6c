"""Which reading of Twilio's documentation the simulator plays where the documentation is ambiguous.

Each switch is one behaviour that Twilio's docs leave open (docs/twilio-behaviour.md says, for
each, the sources, what is certain, and how Baton copes with every reading). The default of every
switch is the strict, documented reading. One `Profile` object is shared by the simulator's
products; tests change it while the simulator runs (``Simulator.profile.update(...)``, or
``PUT /_sim/profile``), and ``baton sim --profile NAME`` starts with a named one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

# Every switch, with its readings; the first is the default (the documented one).
READINGS: dict[str, tuple[str, ...]] = {
    # When the last step of the matched filter times out: ``workflow.timeout`` and the task is
    # canceled ("cancel"), or it falls through to the default filter ("default_filter").
    "workflow_end": ("cancel", "default_filter"),
    # An attribute update re-drives a task only while it is pending, and a reservation that ends
    # leaves the task in its filter and step ("pending_only"); or a reservation that ends makes
    # the task match the filters again with its current attributes ("rematch").
    "redrive": ("pending_only", "rematch"),
    # A queue's MaxReservedWorkers is honoured: several agents are offered a task at once, the
    # first acceptance wins, the others are rescinded ("per_queue"); or one agent at a time ("one").
    "reservations": ("per_queue", "one"),
    # An invite's Routing.properties.attributes given as a JSON string: parsed ("parsed"), or kept
    # as a string inside the task's attributes, double-encoded ("double_encoded").
    "invite_attributes": ("parsed", "double_encoded"),
    # A service-level webhook configuration of the conversation's service overrides the account's
    # global one ("service_overrides"), or both are called ("both").
    "conversations_webhooks": ("service_overrides", "both"),
    # IAM's answer to an invalid Flex token: 200 with ``valid: false`` ("ok_invalid"), or 401 ("http_401").
    "iam_invalid_token": ("ok_invalid", "http_401"),
    # Event Streams' CloudEvents ``data`` for a TaskRouter event: an envelope whose ``payload`` holds the
    # event's snake_case fields, as Twilio's event-type pages show ("envelope"), or those fields directly
    # in ``data`` ("flat").
    "event_streams_data": ("envelope", "flat"),
    # X-Twilio-Signature on an Event Streams delivery: the JSON-body scheme of Twilio's webhook security
    # page, a ``bodySHA256`` query parameter added to the URL and the URL signed ("body_sha256"); the URL
    # followed by the raw body signed ("url_and_body"); or no signature at all ("none").
    "event_streams_signature": ("body_sha256", "url_and_body", "none"),
    # A new sink is active at once, its Validate always "valid", as the Sink Validate page now says
    # ("active_at_once"); or it starts ``initialized`` and becomes active only once validated with the
    # id of a test event it received, subscriptions refused until then ("test_and_validate").
    "sink_validation": ("active_at_once", "test_and_validate"),
}

# Named profiles: the documented reading of everything, and the other reading of everything.
PROFILES: dict[str, dict[str, str]] = {
    "documented": {name: readings[0] for name, readings in READINGS.items()},
    "alternate": {name: readings[1] for name, readings in READINGS.items()},
}


class ProfileError(ValueError):
    """An unknown profile, switch or reading."""


@dataclass
class Profile:
    """The reading in force for each switch of `READINGS` (mutable, shared, thread-safe to update)."""

    workflow_end: str = READINGS["workflow_end"][0]
    redrive: str = READINGS["redrive"][0]
    reservations: str = READINGS["reservations"][0]
    invite_attributes: str = READINGS["invite_attributes"][0]
    conversations_webhooks: str = READINGS["conversations_webhooks"][0]
    iam_invalid_token: str = READINGS["iam_invalid_token"][0]
    event_streams_data: str = READINGS["event_streams_data"][0]
    event_streams_signature: str = READINGS["event_streams_signature"][0]
    sink_validation: str = READINGS["sink_validation"][0]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.update(**self.switches())

    def switches(self) -> dict[str, str]:
        """The reading of every switch."""
        return {name: getattr(self, name) for name in READINGS}

    def update(self, name: str | None = None, **switches: Any) -> dict[str, str]:
        """Start from the named profile (when given), then set these switches; returns every switch.

        Checked whole before anything changes: an unknown name, switch or reading raises ProfileError.
        """
        if name is not None and name not in PROFILES:
            raise ProfileError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        wanted = {**(PROFILES[name] if name else self.switches()), **switches}
        for switch, reading in wanted.items():
            if switch not in READINGS:
                raise ProfileError(f"unknown switch {switch!r}; known: {', '.join(READINGS)}")
            if reading not in READINGS[switch]:
                raise ProfileError(f"{switch} is one of {', '.join(READINGS[switch])}, not {reading!r}")
        with self._lock:
            for switch, reading in wanted.items():
                setattr(self, switch, reading)
        return self.switches()

    def __repr__(self) -> str:
        return f"Profile({', '.join(f'{k}={v!r}' for k, v in self.switches().items())})"
