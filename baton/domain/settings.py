"""The transfer settings an administrator controls, and the one schema that validates them.

They live in Redis (so every process sees a change at once) and are seeded from the environment:
until an administrator changes them, the values of the variables below apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from marshmallow import Schema, ValidationError, validate, validates_schema
from marshmallow import fields as f

CLOSE_SENDER_ON = ("accepted", "queued")


@dataclass(frozen=True)
class Settings:
    """What transfers may do and how they behave.

    max_attempts: offers made before the transfer fails.
    offer_timeout_s: how long the target agent's step lasts in the transfer workflow (``baton setup``
        writes it there); later offers are bounded by the workflow's reservation timeout.
    transfer_timeout_s: a transfer not accepted by then fails.
    close_sender_on: "accepted", or "queued" to close the sender as soon as a queue transfer enters
        its queue (Flex's native behaviour).
    sender_wrapup: put the sender in wrap-up instead of closing their task.
    redact_pii: card numbers, security codes and SSNs are redacted from every copy Baton makes.
    customer_notice_enabled/customer_notice_text: post this message into the conversation when a
        transfer starts. It is all the customer sees of a transfer: never notes, summary or context.
    """

    transfers_enabled: bool = True
    notes_enabled: bool = True
    summary_enabled: bool = False
    max_attempts: int = 5
    offer_timeout_s: int = 30
    transfer_timeout_s: int = 600
    close_sender_on: str = "accepted"
    sender_wrapup: bool = False
    redact_pii: bool = True
    customer_notice_enabled: bool = False
    customer_notice_text: str = "Connecting you with a specialist…"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SettingsSchema(Schema):
    """Validates settings (a whole set, or a PATCH with ``partial=True``) and loads a Settings."""

    transfers_enabled = f.Boolean()
    notes_enabled = f.Boolean()
    summary_enabled = f.Boolean()
    max_attempts = f.Integer(strict=False, validate=validate.Range(1, 20))
    offer_timeout_s = f.Integer(strict=False, validate=validate.Range(5, 3600))
    transfer_timeout_s = f.Integer(strict=False, validate=validate.Range(30, 86400))
    close_sender_on = f.String(validate=validate.OneOf(CLOSE_SENDER_ON))
    sender_wrapup = f.Boolean()
    redact_pii = f.Boolean()
    customer_notice_enabled = f.Boolean()
    customer_notice_text = f.String(validate=validate.Length(1, 320))

    @validates_schema
    def _offer_fits_in_transfer(self, data: dict[str, Any], **_: Any) -> None:
        offer, transfer = data.get("offer_timeout_s"), data.get("transfer_timeout_s")
        if offer is not None and transfer is not None and offer >= transfer:
            raise ValidationError("must be longer than offer_timeout_s", "transfer_timeout_s")


def validated_settings(changes: Mapping[str, Any], base: Settings) -> Settings:
    """``base`` with ``changes`` applied, validated as a whole.

    Raises marshmallow's ValidationError naming each bad or unknown field.
    """
    return Settings(**SettingsSchema().load({**base.to_dict(), **changes}))


# The environment variable that seeds each setting.
ENVIRONMENT = {field.name.upper(): field.name for field in fields(Settings)}
