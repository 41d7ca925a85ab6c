"""Request parameters, as the simulator's product modules read them, with Twilio's 400s for bad values.

`simulator.server` hands a handler the parameters as strings: the last value of a scalar, a list
for an array. These functions read one parameter by its Twilio name, answer None when it is absent
(or, for the typed ones, empty), and raise `simulator.core.invalid` naming the parameter when its
value cannot be read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from simulator.core import ApiRequest, invalid


def _last_value(request: ApiRequest, name: str) -> Any:
    value = request.params.get(name)
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def text_param(request: ApiRequest, name: str) -> str | None:
    """The parameter as text; None when absent."""
    value = _last_value(request, name)
    return None if value is None else str(value)


def required_param(request: ApiRequest, name: str) -> str:
    """The parameter as text; 400 when absent or empty."""
    value = text_param(request, name)
    if not value:
        raise invalid(f"Missing required parameter {name}")
    return value


def integer_param(request: ApiRequest, name: str) -> int | None:
    """The parameter as an integer; None when absent or empty."""
    value = _last_value(request, name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected an integer") from None


def boolean_param(request: ApiRequest, name: str) -> bool | None:
    """The parameter as a boolean; None when absent or empty."""
    value = _last_value(request, name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    # ListWorker documents `true`, `1` or `yes` for Available; the same words are accepted everywhere.
    word = str(value).lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    raise invalid(f"Invalid value '{value}' for parameter '{name}'; expected true or false")


def list_param(request: ApiRequest, name: str) -> list[str]:
    """Every value of the parameter as text; empty when absent."""
    value = request.params.get(name)
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def header(request: ApiRequest, name: str) -> str | None:
    """The request header ``name``, whatever its case; None when absent."""
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def parse_date(text: str, name: str) -> float:
    """Epoch seconds of the ISO 8601 date-time ``text`` given as parameter ``name`` (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid value '{text}' for parameter '{name}'; expected an ISO 8601 date") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def date_param(request: ApiRequest, name: str) -> float | None:
    """The parameter as epoch seconds (see `parse_date`); None when absent or empty."""
    value = text_param(request, name)
    return None if not value else parse_date(value, name)
