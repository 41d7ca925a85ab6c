"""Shared plumbing of the Twilio simulator: sids, dates, errors, the scaled clock and webhook delivery.

Every product module (TaskRouter, Flex Interactions, Conversations, IAM) mutates its state while
holding the simulator's single re-entrant lock; timers fire under that lock too, so a product
module never sees another one half-updated. Webhooks leave through the dispatcher's own threads,
outside the lock, as Twilio's deliveries would.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: the two-letter resource prefix and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def iso_date(epoch_seconds: float) -> str:
    """Twilio's JSON date format, e.g. ``2014-05-14T18:50:02Z``."""
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimError(Exception):
    """A request the simulated Twilio refuses, rendered as Twilio's JSON error body."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_body(self) -> dict[str, Any]:
        """Twilio's error document."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def not_found(path: str) -> SimError:
    """Twilio's answer for a resource that does not exist."""
    return SimError(404, 20404, f"The requested resource {path} was not found")


def invalid(message: str) -> SimError:
    """Twilio's answer for a parameter or state it cannot accept."""
    return SimError(400, 20001, message)


@dataclass(frozen=True)
class ApiRequest:
    """One validated REST request, as a product module's handler receives it.

    ``params`` holds the query (GET, DELETE) or form (POST) parameters: the last value of a
    scalar parameter, every value of an array parameter (as a list).
    """

    method: str
    path: str
    path_params: Mapping[str, str]
    params: Mapping[str, Any]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class ApiResult:
    """What a handler answers when 200 with no headers is not enough.

    ``body`` is one resource (a dict), a sequence of resources for a list operation (the server
    pages it), or None for 204.
    """

    body: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[ApiRequest], "Mapping[str, Any] | Sequence[Mapping[str, Any]] | ApiResult"]


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    canceled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.canceled = True


class Clock:
    """Real time, with simulated durations scaled by ``time_scale``.

    A reservation timeout of 120 s with ``time_scale=0.01`` fires after 1.2 real seconds, so
    timeout scenarios run in seconds. Callbacks run on one scheduler thread, under ``lock``.
    """

    def __init__(self, lock: threading.RLock, time_scale: float = 1.0):
        self.lock = lock
        self.time_scale = time_scale
        self._heap: list[_Timer] = []
        self._seq = itertools.count()
        self._wakeup = threading.Condition(threading.Lock())
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> float:
        return time.time()

    def call_later(self, simulated_seconds: float, callback: Callable[[], None]) -> _Timer:
        """Run ``callback`` after ``simulated_seconds`` (scaled); the handle's ``cancel()`` stops it."""
        timer = _Timer(time.monotonic() + simulated_seconds * self.time_scale, next(self._seq), callback)
        with self._wakeup:
            heapq.heappush(self._heap, timer)
            self._wakeup.notify()
        return timer

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._wakeup.wait(timeout)
                if self._stopped:
                    return
                timer = heapq.heappop(self._heap)
            if timer.canceled:
                continue
            with self.lock:
                if timer.canceled:
                    continue
                try:
                    timer.callback()
                except Exception:  # a broken timer must not stop the simulated world
                    log.exception("simulator timer failed")


@dataclass(frozen=True)
class Delivery:
    """One webhook the simulator sent (or was told to drop), for tests to inspect.

    ``sent_at`` (epoch seconds) is when its POST began, after any jitter: where a reaction time starts.
    ``events`` are the CloudEvents of an Event Streams delivery, a JSON body (its ``params`` are empty).
    """

    url: str
    params: Mapping[str, str]
    status: int | None
    dropped: bool = False
    sent_at: float | None = None
    events: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class _Outgoing:
    """One queued webhook: a form to sign, or a JSON body its sender already signed (``headers``)."""

    url: str
    form: Mapping[str, str]
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    events: tuple[Mapping[str, Any], ...] = ()
    on_answer: Callable[[int | None], None] | None = None


class WebhookDispatcher:
    """Posts signed, form-encoded webhooks from background threads, as Twilio does; and JSON bodies
    (Event Streams' batches of CloudEvents) that their sender signed.

    Several delivery threads run at once, so, as with Twilio, events can arrive out of order.
    Fault injection: ``drop`` decides per form webhook whether it is lost on the way (Event Streams
    asks it per event, before batching); ``copies`` sends each webhook that many times (Twilio
    retries), each copy after a random delay of up to ``jitter_s`` seconds, which also shuffles
    their order. The delays come from a generator of the dispatcher's own, seeded with ``jitter_seed``, so
    that a run's delays can be drawn again (the threads' timing still varies).
    """

    def __init__(self, auth_token: str, threads: int = 4, timeout: float = 15.0, jitter_seed: int = 0):
        self._validator = RequestValidator(auth_token)
        self._queue: queue.Queue[_Outgoing | None] = queue.Queue()
        self._timeout = timeout
        self._local = threading.local()
        self.drop: Callable[[str, Mapping[str, str]], bool] = lambda url, params: False
        self.copies = 1
        self.jitter_s = 0.0
        self._jitter = random.Random(jitter_seed)
        self.deliveries: list[Delivery] = []
        self._pending = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"sim-webhooks-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def signature(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` of a form POST to ``url``."""
        return self._validator.compute_signature(url, dict(params))

    def send(self, url: str, params: Mapping[str, Any]) -> None:
        """Queue a signed POST of ``params`` to ``url``; values are sent as strings."""
        form = {name: value if isinstance(value, str) else str(value)
                for name, value in params.items() if value is not None}
        self._put(_Outgoing(url, form))

    def send_json(self, url: str, body: bytes, headers: Mapping[str, str],
                  events: Sequence[Mapping[str, Any]] = (),
                  on_answer: Callable[[int | None], None] | None = None) -> None:
        """Queue a POST of the JSON ``body`` with ``headers`` (authorization and signature: the
        sender's); ``on_answer`` is called with each copy's HTTP status (None: no answer)."""
        self._put(_Outgoing(url, {}, body, dict(headers), tuple(events), on_answer))

    def _put(self, outgoing: _Outgoing) -> None:
        with self._idle:
            self._pending += self.copies
        for _ in range(self.copies):
            self._queue.put(outgoing)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook has been sent; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                delivery = self._deliver(item) if item.body is None else self._deliver_json(item)
                self.deliveries.append(delivery)
                if item.on_answer is not None:
                    item.on_answer(delivery.status)
            except Exception:  # a broken callback must not stop delivery
                log.exception("webhook delivery to %s failed", item.url)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, item: _Outgoing) -> Delivery:
        url, form = item.url, item.form
        if self.jitter_s:
            time.sleep(self._jitter.uniform(0, self.jitter_s))
        if self.drop(url, form):
            return Delivery(url, form, None, dropped=True)
        headers = {"X-Twilio-Signature": self.signature(url, form), "User-Agent": "TwilioProxy/1.1"}
        sent_at = time.time()
        try:
            response = self._session().post(url, data=form, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            log.warning("webhook to %s failed: %s", url, exc.__class__.__name__)
            return Delivery(url, form, None, sent_at=sent_at)
        return Delivery(url, form, response.status_code, sent_at=sent_at)

    def _deliver_json(self, item: _Outgoing) -> Delivery:
        if self.jitter_s:
            time.sleep(self._jitter.uniform(0, self.jitter_s))
        headers = {"Content-Type": "application/json", "User-Agent": "Twilio-Event-Streams/1.0", **item.headers}
        sent_at = time.time()
        try:
            response = self._session().post(item.url, data=item.body, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            log.warning("webhook to %s failed: %s", item.url, exc.__class__.__name__)
            return Delivery(item.url, {}, None, sent_at=sent_at, events=item.events)
        return Delivery(item.url, {}, response.status_code, sent_at=sent_at, events=item.events)
