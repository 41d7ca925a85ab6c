"""Fault injection for the simulator's REST APIs, and the webhook drop rule of the control API.

A rule matches requests by method, product and path (a substring, or a compiled regex, of the path
under the product, e.g. ``"/Invites"``) and either faults them at a ``rate`` (a seeded
``random.Random``, so a run is reproducible) or follows a scripted ``sequence`` (the next matching
requests get these faults in order, then pass). The server asks `Faults.pick` once a request has
been authenticated, matched and validated, so a fault always hits a request Twilio would accept:

- ``429`` (code 20429, ``Retry-After``), ``500`` (20500), ``503`` (20503): answered at once, the
  request NOT applied; Twilio's 429 is "never processed and always safe to retry".
- ``drop``: the connection is closed without any answer, the request NOT applied. The client sees
  a connection error (``requests.exceptions.ConnectionError``).
- ``timeout``: the request is applied, then its answer waits ``delay_s`` (11 s by default, more
  than Baton's 10 s read timeout): a slow Twilio that acted although the client gave up.
- ``delay``: the same with a short ``delay_s`` (1 s by default), for "request in flight" tests.
- ``hold``: the request waits until a `threading.Event` is set (``until``, or the rule's own,
  set by `FaultRule.release`). ``when="before"`` holds it before it is applied (the caller dies
  before Twilio acted), ``when="after"`` applies it and holds the answer (Twilio acted, the caller
  never learned). Once the event is set the rule lets requests through.

``when`` also applies to ``timeout`` and ``delay`` (default ``"after"``: applied at once, answered
late). A fault is counted when it takes effect: for the waiting kinds, when the wait begins, so
`FaultRule.wait` tells a test that the request is now in flight and held.

Twilio's own request limits are `RateLimits` (``sim.faults.rate_limits``), the documented ones played by
default (``DOCUMENTED_RATE_LIMITS``; ``set({})`` turns them off, as a bench measuring past one account
does): per endpoint (an OpenAPI operation; a list filtered by an expression is an endpoint of its own),
a token bucket holding one second's worth of requests, refilled at the limit, in real seconds whatever
the simulator's time scale. A request beyond it gets Twilio's 429 (code 20429, ``Retry-After``), not
applied, before any rule is consulted.

Usage::

    sim.faults.rate_limits.set({})   # no limits: past what one account lets through
    rule = sim.faults.add(method="POST", path="/Invites", sequence=[429, None, "drop"])
    sim.faults.add(product="taskrouter", kind=503, rate=0.2, seed=7)
    held = sim.faults.add(path="/Invites", kind="hold", when="after", times=1)
    held.wait()       # the invite exists; its answer is held
    held.release()
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

__all__ = ["DOCUMENTED_RATE_LIMITS", "KINDS", "DroppedConnection", "Fault", "FaultRule", "Faults", "RateLimits",
           "WebhookDrop", "rate_limited_endpoint"]

KINDS = ("429", "500", "503", "timeout", "drop", "delay", "hold")
_ERRORS = {"429": (20429, "Too Many Requests"), "500": (20500, "Internal Server Error"),
           "503": (20503, "Service Unavailable")}
_WAITING = ("timeout", "delay", "hold")
# Baton's read timeout is 10 s; a timeout fault outlasts it unless told otherwise.
DEFAULT_DELAY_S = {"timeout": 11.0, "delay": 1.0}
DEFAULT_MAX_HOLD_S = 60.0
# The list filters Twilio limits apart from their list (changelog, Oct 2024): operation -> the filter parameter.
_FILTERED_LISTS = {"ListTask": "EvaluateTaskAttributes", "ListWorker": "TargetWorkersExpression",
                   "ListTaskQueue": "EvaluateWorkerAttributes"}
# Twilio's documented limits, requests per second per account (docs/twilio-behaviour.md §11): 20 on each endpoint
# of the Interactions API (Flex Conversations limits page), 3 on TaskRouter's lists filtered by an expression.
# TaskRouter's other limits are shown only in a workspace's Console; they are not played unless set.
DOCUMENTED_RATE_LIMITS: Mapping[str, float] = {
    **{operation: 20 for operation in (
        "CreateInteraction", "FetchInteraction", "UpdateInteraction", "ListInteractionChannel",
        "FetchInteractionChannel", "UpdateInteractionChannel", "ListInteractionChannelInvite",
        "CreateInteractionChannelInvite", "ListInteractionChannelParticipant", "CreateInteractionChannelParticipant",
        "UpdateInteractionChannelParticipant", "CreateInteractionTransfer", "FetchInteractionTransfer",
        "UpdateInteractionTransfer")},
    **{f"{operation}?{parameter}": 3 for operation, parameter in _FILTERED_LISTS.items()},
}


class DroppedConnection(ConnectionAbortedError):
    """Raised out of the WSGI app to close the connection without an answer.

    The simulator's server (`simulator.httpd`) closes the connection of an application that raises a
    ``ConnectionError``, writing nothing, so the client sees the connection closed without a response.
    """


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    kind = str(value)
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {value!r}; expected one of {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class Fault:
    """What one request gets: its ``kind`` and the rule's settings for that kind."""

    kind: str
    rule_id: int
    retry_after: float = 1
    delay_s: float = 0.0
    when: str = "after"
    release: threading.Event | None = None
    max_hold_s: float = DEFAULT_MAX_HOLD_S


class FaultRule:
    """One rule of `Faults`, and its handle: `remove`, `release` (a hold), `count`, `wait`."""

    def __init__(self, faults: Faults, rule_id: int, *, method: str | None, path: str | re.Pattern[str] | None,
                 product: str | None, kind: str | None, rate: float | None, sequence: Sequence[str | None] | None,
                 retry_after: float, delay_s: float | None, when: str, until: threading.Event | None,
                 max_hold_s: float, seed: int):
        self.id = rule_id
        self.method = method.upper() if method else None
        self.path = path
        self.product = product
        self.kind = kind
        self.rate = rate
        self.sequence = tuple(sequence) if sequence is not None else None
        self.retry_after = retry_after
        self.delay_s = delay_s
        self.when = when
        self.until = until
        self.max_hold_s = max_hold_s
        self.seed = seed
        self.count = 0
        self._faults = faults
        self._random = random.Random(seed)
        self._position = 0

    def matches(self, method: str, product: str, path: str) -> bool:
        """Whether a request falls under this rule (before rate or sequence decide)."""
        if self.method is not None and method.upper() != self.method:
            return False
        if self.product is not None and product != self.product:
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return self.path in path

    @property
    def exhausted(self) -> bool:
        """A sequence rule whose every step has been used: it lets everything through now."""
        return self.sequence is not None and self._position >= len(self.sequence)

    def next_kind(self) -> str | None:
        """Advance the sequence or draw from the rate; the caller holds the `Faults` lock."""
        if self.sequence is not None:
            if self._position >= len(self.sequence):
                return None
            kind = self.sequence[self._position]
            self._position += 1
        elif self.rate is not None:
            kind = self.kind if self._random.random() < self.rate else None
        else:
            kind = self.kind
        if kind == "hold" and self.until is not None and self.until.is_set():
            return None
        return kind

    def fault(self, kind: str) -> Fault:
        delay_s = self.delay_s if self.delay_s is not None else DEFAULT_DELAY_S.get(kind, 0.0)
        return Fault(kind, self.id, self.retry_after, delay_s, self.when, self.until, self.max_hold_s)

    def remove(self) -> None:
        """Stop faulting; a request held by this rule is let go."""
        self._faults.remove(self.id)

    def release(self) -> None:
        """Let held requests go (sets the hold's event); later matching requests pass."""
        if self.until is not None:
            self.until.set()

    def wait(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until this rule's faults have taken effect ``count`` times; False on timeout."""
        return self._faults._wait(lambda: self.count >= count, timeout)

    def describe(self) -> dict[str, Any]:
        """The rule as JSON for ``GET /_sim/faults``."""
        return {
            "id": self.id, "method": self.method, "product": self.product,
            "path": self.path if not isinstance(self.path, re.Pattern) else None,
            "path_regex": self.path.pattern if isinstance(self.path, re.Pattern) else None,
            "kind": self.kind, "rate": self.rate,
            "sequence": list(self.sequence) if self.sequence is not None else None,
            "retry_after": self.retry_after, "delay_s": self.delay_s, "when": self.when, "seed": self.seed,
            "count": self.count, "exhausted": self.exhausted,
            "released": self.until.is_set() if self.until is not None else None,
        }


def rate_limited_endpoint(operation_id: str, params: Mapping[str, Any]) -> str:
    """The endpoint a request counts against: its operation, or ``{operation}?{filter}`` for a filtered list."""
    parameter = _FILTERED_LISTS.get(operation_id)
    return f"{operation_id}?{parameter}" if parameter is not None and params.get(parameter) else operation_id


class RateLimits:
    """Twilio's per-endpoint request limits, played: a token bucket per endpoint (the simulator is one account).

    Each bucket holds one second's worth of requests (``limit``) and gains ``limit`` a second: the reading of
    "N requests per second" that lets N go at once. ``limited`` counts the requests refused.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._limits: dict[str, float] = dict(DOCUMENTED_RATE_LIMITS)
        self._buckets: dict[str, tuple[float, float]] = {}  # endpoint -> (tokens, when counted)
        self.limited = 0

    def set(self, limits: Mapping[str, float]) -> None:
        """Play these limits (requests per second by endpoint, `rate_limited_endpoint`) instead of the ones in
        force, each bucket starting full; an empty mapping turns limits off."""
        if any(not isinstance(rate, (int, float)) or not 0 < rate < math.inf for rate in limits.values()):
            raise ValueError("each limit must be a positive number of requests per second")
        with self._lock:
            self._limits = {endpoint: float(rate) for endpoint, rate in limits.items()}
            self._buckets = {}

    def limits(self) -> dict[str, float]:
        with self._lock:
            return dict(self._limits)

    def admit(self, endpoint: str | None) -> float | None:
        """None when a request to ``endpoint`` may go (it takes a token); else the seconds until one may."""
        now = self._clock()
        with self._lock:
            limit = self._limits.get(endpoint) if endpoint is not None else None
            if limit is None:
                return None
            tokens, counted = self._buckets.get(endpoint, (limit, now))
            tokens = min(limit, tokens + (now - counted) * limit)
            if tokens >= 1 - 1e-9:  # a token refilled by float arithmetic may fall a hair short of one
                self._buckets[endpoint] = (tokens - 1, now)
                return None
            self._buckets[endpoint] = (tokens, now)
            self.limited += 1
            return (1 - tokens) / limit

    def describe(self) -> dict[str, Any]:
        """``GET /_sim/rate-limits``: the limits in force and how many requests they refused."""
        with self._lock:
            return {"limits": dict(self._limits), "limited": self.limited}


class Faults:
    """The simulator's fault rules, consulted in the order they were added; the first that faults wins.

    rate_limits: Twilio's request limits (`RateLimits`), consulted before the rules.
    """

    def __init__(self, seed: int = 0):
        self.rate_limits = RateLimits()
        self._seed = seed
        self._ids = itertools.count(1)
        self._rules: dict[int, FaultRule] = {}
        self._counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closed = threading.Event()

    def add(self, method: str | None = None, path: str | re.Pattern[str] | None = None, product: str | None = None,
            *, kind: str | int | None = None, rate: float | None = None,
            sequence: Sequence[str | int | None] | None = None, times: int | None = None, retry_after: float = 1,
            delay_s: float | None = None, when: str = "after", until: threading.Event | None = None,
            max_hold_s: float = DEFAULT_MAX_HOLD_S, seed: int | None = None) -> FaultRule:
        """Add a rule; returns its handle.

        method, product: match exactly when given (``"POST"``; ``"taskrouter"``, ``"flex-api"``, …).
        path: a substring of the path under the product, or a compiled regex searched in it.
        kind: the fault (``429``, ``500``, ``503``, ``"timeout"``, ``"drop"``, ``"delay"``, ``"hold"``),
            for every matching request, a ``rate`` (0..1) of them, or the next ``times`` of them.
        sequence: instead of ``kind``, the faults of the next matching requests in order, None
            letting one pass; after the last, requests pass.
        retry_after: the 429's ``Retry-After`` in seconds.
        delay_s: how long ``timeout`` and ``delay`` wait (11 s and 1 s by default).
        when: ``"before"`` or ``"after"`` the request is applied, for the waiting kinds.
        until: the event a ``hold`` waits for (the rule makes its own when None); a hold gives up
            after ``max_hold_s`` in any case, so a forgotten event cannot wedge the simulator.
        seed: the rate's random seed; by default derived from the simulator's seed and the rule id.
        """
        kinds = [_kind(value) for value in sequence] if sequence is not None else None
        single = _kind(kind)
        if kinds is not None and (single is not None or rate is not None or times is not None):
            raise ValueError("give either a sequence, or a kind with an optional rate or times")
        if kinds is None and single is None:
            raise ValueError("a fault rule needs a kind or a sequence")
        if rate is not None and times is not None:
            raise ValueError("give a rate or times, not both")
        if rate is not None and not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if times is not None:
            if times < 0:
                raise ValueError("times must not be negative")
            kinds = [single] * times
        if when not in ("before", "after"):
            raise ValueError('when must be "before" or "after"')
        if retry_after < 0 or (delay_s is not None and delay_s < 0) or max_hold_s < 0:
            raise ValueError("retry_after, delay_s and max_hold_s must not be negative")
        if until is None and (single == "hold" or (kinds and "hold" in kinds)):
            until = threading.Event()
        rule_id = next(self._ids)
        rule = FaultRule(self, rule_id, method=method, path=path, product=product, kind=single, rate=rate,
                         sequence=kinds, retry_after=retry_after, delay_s=delay_s, when=when, until=until,
                         max_hold_s=max_hold_s, seed=seed if seed is not None else self._seed * 1_000_003 + rule_id)
        with self._changed:
            self._rules[rule_id] = rule
        return rule

    def remove(self, rule_id: int) -> bool:
        """Remove one rule (requests it holds go on); False if there is no such rule."""
        with self._changed:
            return self._rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        """Remove every rule and let held requests go; the counts stay."""
        with self._changed:
            self._rules = {}

    def rules(self) -> list[FaultRule]:
        """The rules, in the order they are consulted."""
        with self._changed:
            return list(self._rules.values())

    def get(self, rule_id: int) -> FaultRule | None:
        """The rule with this id, or None."""
        with self._changed:
            return self._rules.get(rule_id)

    def count(self, kind: str | int | None = None) -> int:
        """How many faults have taken effect since the simulator started, of one ``kind`` or all."""
        with self._changed:
            return self._counts[_kind(kind)] if kind is not None else sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """The faults that have taken effect, by kind."""
        with self._changed:
            return dict(self._counts)

    def close(self) -> None:
        """Let every waiting request go at once (the simulator is stopping)."""
        self._closed.set()
        self.clear()

    # --- used by the server ------------------------------------------------------------------

    def pick(self, method: str, product: str, path: str, endpoint: str | None = None) -> Fault | None:
        """The fault for one valid request, or None; advances the rules that match it.

        endpoint: what the request counts against in `rate_limits` (`rate_limited_endpoint`); a request past its
        limit gets a 429 with the wait as its Retry-After (HTTP's whole seconds), whatever the rules.
        """
        wait_s = self.rate_limits.admit(endpoint)
        if wait_s is not None:
            return Fault("429", rule_id=0, retry_after=math.ceil(wait_s))
        with self._changed:
            for rule in self._rules.values():
                if rule.matches(method, product, path) and (kind := rule.next_kind()) is not None:
                    return rule.fault(kind)
        return None

    def perform(self, fault: Fault, apply: Callable[[], Response]) -> Response:
        """Answer a request under ``fault``; ``apply`` applies it and renders the normal answer.

        Raises DroppedConnection for ``drop``: the server closes the connection without answering.
        """
        if fault.kind in _ERRORS:
            self._took_effect(fault)
            code, message = _ERRORS[fault.kind]
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.kind == "429" else {}
            body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": int(fault.kind)}
            return Response(json.dumps(body), status=int(fault.kind), headers=headers,
                            content_type="application/json")
        if fault.kind == "drop":
            self._took_effect(fault)
            raise DroppedConnection("connection dropped by a simulator fault")
        response = None
        if fault.when == "after":
            response = apply()
        self._took_effect(fault)
        if fault.kind == "hold":
            self._hold(fault)
        else:
            self._closed.wait(fault.delay_s)
        return response if response is not None else apply()

    def _hold(self, fault: Fault) -> None:
        assert fault.release is not None
        deadline = time.monotonic() + fault.max_hold_s
        while not fault.release.wait(0.02):
            if self._closed.is_set() or fault.rule_id not in self._rules or time.monotonic() >= deadline:
                return

    def _took_effect(self, fault: Fault) -> None:
        with self._changed:
            self._counts[fault.kind] += 1
            rule = self._rules.get(fault.rule_id)
            if rule is not None:
                rule.count += 1
            self._changed.notify_all()

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # --- the control API's JSON --------------------------------------------------------------

    def add_from_json(self, document: Any) -> FaultRule:
        """A rule from ``POST /_sim/faults``: `add`'s arguments, ``path_regex`` for a regex path."""
        if not isinstance(document, Mapping):
            raise ValueError("expected a JSON object describing a fault rule")
        allowed = {"method", "path", "path_regex", "product", "kind", "rate", "sequence", "times", "retry_after",
                   "delay_s", "when", "max_hold_s", "seed"}
        unknown = set(document) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        arguments = dict(document)
        if arguments.get("path_regex") is not None:
            if arguments.get("path") is not None:
                raise ValueError("give path or path_regex, not both")
            try:
                arguments["path"] = re.compile(arguments["path_regex"])
            except (re.error, TypeError) as exc:
                raise ValueError(f"path_regex is not a regular expression: {exc}") from None
        arguments.pop("path_regex", None)
        if "sequence" in arguments and not isinstance(arguments["sequence"], (list, type(None))):
            raise ValueError("sequence must be a list")
        try:
            return self.add(**arguments)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def describe(self) -> dict[str, Any]:
        """``GET /_sim/faults``: the rules, and the counts by kind."""
        return {"rules": [rule.describe() for rule in self.rules()], "counts": self.counts(), "total": self.count()}


class WebhookDrop:
    """A `WebhookDispatcher.drop` predicate: loses a ``rate`` of the webhooks of ``event_types`` (all when empty).

    The event type is the webhook's ``EventType`` (TaskRouter's ``reservation.accepted``,
    Conversations' ``onMessageAdded``). Draws come from a seeded ``random.Random``.
    """

    def __init__(self, event_types: Iterable[str] = (), rate: float = 1.0, seed: int = 0):
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if isinstance(event_types, str):
            raise ValueError("event_types must be a list")
        self.event_types = frozenset(event_types)
        self.rate = rate
        self.seed = seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # the dispatcher's threads call us at once

    def __call__(self, url: str, params: Mapping[str, str]) -> bool:
        if self.event_types and params.get("EventType") not in self.event_types:
            return False
        with self._lock:
            return self._random.random() < self.rate

    def describe(self) -> dict[str, Any]:
        return {"event_types": sorted(self.event_types), "rate": self.rate, "seed": self.seed}
