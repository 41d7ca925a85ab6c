"""Baton's Prometheus metrics: what they are, how each process records them, and how ``/metrics`` shows them.

The web's gunicorn workers are separate processes: each records with prometheus-client into its own
files under ``PROMETHEUS_MULTIPROC_DIR`` (set in the Procfile's shell, wiped by gunicorn at boot), and
a scrape merges every worker's files, so it answers the same whichever worker serves it.

The Celery workers record into Redis instead (``RedisSink``): on Heroku they run on other dynos than
the web, with no disk in common, and only the web can be reached over HTTP. Each worker process
adds up its samples in memory and a thread of its own adds them to one Redis hash every second, in
one round trip (after each task, it was a third of the worker's Redis commands).
A scrape reads that hash and adds its samples to the web's, so the two halves of a metric (Twilio
calls made by the web to authorize callers, and by the workers to transfer) are one series. The
queue depth is read from the broker when scraped.

Counters and histograms only: they add up across processes and machines, which gauges would not.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from baton.infrastructure.store import Store

log = logging.getLogger(__name__)

CELERY_QUEUE = "celery"
# generate_latest's default output is the classic text format, which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True)
class Spec:
    """One metric: ``name`` without the ``_total`` a counter's sample gets; ``buckets`` for a histogram."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


WEBHOOK_REQUESTS = Spec("baton_webhook_requests", "counter", "Twilio webhook requests answered, by endpoint and "
                        "HTTP status", ("endpoint", "status"))
WEBHOOK_SECONDS = Spec("baton_webhook_duration_seconds", "histogram", "Time to answer a Twilio webhook",
                       ("endpoint",), (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15))
TRANSFERS = Spec("baton_transfers", "counter", "Transfers that reached a final state, by outcome (completed, "
                 "failed, canceled) and mode", ("outcome", "mode"))
ACCEPT_SECONDS = Spec("baton_transfer_accept_seconds", "histogram", "Seconds from a transfer's request to its "
                      "acceptance by an agent", ("mode",), (1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600))
OFFERS = Spec("baton_transfer_offers", "histogram", "Offers made to agents per finished transfer, by outcome",
              ("outcome",), (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20))
TWILIO_SECONDS = Spec("baton_twilio_request_duration_seconds", "histogram", "Twilio requests by endpoint (the "
                      "count) and how long each took, failures included", ("endpoint",),
                      (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TWILIO_ERRORS = Spec("baton_twilio_errors", "counter", "Twilio requests that failed, by endpoint and kind "
                     "(retryable: 429, 5xx, no answer; permanent: other 4xx)", ("endpoint", "kind"))
SPECS = (WEBHOOK_REQUESTS, WEBHOOK_SECONDS, TRANSFERS, ACCEPT_SECONDS, OFFERS, TWILIO_SECONDS, TWILIO_ERRORS)


class Sink(Protocol):
    def inc(self, spec: Spec, labels: tuple[str, ...], amount: float = 1.0) -> None: ...

    def observe(self, spec: Spec, labels: tuple[str, ...], value: float) -> None: ...

    def flush(self) -> None: ...


class LocalSink:
    """prometheus-client's metrics in this process: in multiprocess files when PROMETHEUS_MULTIPROC_DIR is set."""

    def __init__(self) -> None:
        self._metrics = {spec.name: Counter(spec.name, spec.help, spec.labels) if spec.kind == "counter"
                         else Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets) for spec in SPECS}

    def inc(self, spec: Spec, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self._metrics[spec.name].labels(*labels).inc(amount)

    def observe(self, spec: Spec, labels: tuple[str, ...], value: float) -> None:
        self._metrics[spec.name].labels(*labels).observe(value)

    def flush(self) -> None:
        pass


class RedisSink:
    """Samples added up in memory and added to the store's metrics hash by ``flush``: every
    ``every_s`` seconds from a thread of the recording process, and when the process ends.

    A flush that fails (Redis away) keeps its samples for the next one.
    """

    def __init__(self, store: Store, every_s: float = 1.0):
        self.store = store
        self.every_s = every_s
        self._pending: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._flusher_pid: int | None = None

    def inc(self, spec: Spec, labels: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self._start_flusher()
            self._pending[sample_key(spec.name + "_total", spec.labels, labels)] += amount

    def observe(self, spec: Spec, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._start_flusher()
            # Cumulative buckets, as exposed: adding them to the web's is then a plain sum.
            for bound in (*spec.buckets, math.inf):
                if value <= bound:
                    key = sample_key(spec.name + "_bucket", (*spec.labels, "le"), (*labels, floatToGoString(bound)))
                    self._pending[key] += 1
            self._pending[sample_key(spec.name + "_count", spec.labels, labels)] += 1
            self._pending[sample_key(spec.name + "_sum", spec.labels, labels)] += value

    def _start_flusher(self) -> None:
        # In the process that records: the sink is made before Celery forks its pool processes, and a
        # thread does not survive a fork.
        if self._flusher_pid != os.getpid():
            self._flusher_pid = os.getpid()
            threading.Thread(target=self._flush_forever, name="metrics-flush", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.every_s)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(float)
        if not pending:
            return
        try:
            self.store.add_metrics(pending)
        except redis.RedisError as exc:
            log.warning("metrics not recorded, kept for the next try: %r", exc)
            with self._lock:
                for key, value in pending.items():
                    self._pending[key] += value


def sample_key(sample: str, names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """How a sample is named in the store's metrics hash."""
    return json.dumps([sample, dict(zip(names, values, strict=True))], sort_keys=True, separators=(",", ":"))


@functools.cache
def _local_sink() -> LocalSink:
    # Once per process: prometheus-client refuses a second metric of the same name in its registry.
    return LocalSink()


_sink: Sink | None = None


def use(sink: Sink) -> None:
    """Record this process's metrics into ``sink`` (the Celery worker's ``RedisSink``)."""
    global _sink
    _sink = sink


def _current() -> Sink:
    return _sink if _sink is not None else _local_sink()


def flush() -> None:
    """Send what this process recorded where it goes (a no-op but for ``RedisSink``)."""
    _current().flush()


# What Baton records.


def webhook_answered(endpoint: str, status: int, seconds: float) -> None:
    _current().inc(WEBHOOK_REQUESTS, (endpoint, str(status)))
    _current().observe(WEBHOOK_SECONDS, (endpoint,), seconds)


def transfer_accepted(mode: str, seconds: float) -> None:
    _current().observe(ACCEPT_SECONDS, (mode,), max(0.0, seconds))


def transfer_finished(outcome: str, mode: str, offers: int) -> None:
    _current().inc(TRANSFERS, (outcome, mode))
    _current().observe(OFFERS, (outcome,), offers)


def twilio_requested(endpoint: str, seconds: float, failure: str | None) -> None:
    """One Twilio request; ``failure`` is None, "retryable" or "permanent"."""
    _current().observe(TWILIO_SECONDS, (endpoint,), seconds)
    if failure is not None:
        _current().inc(TWILIO_ERRORS, (endpoint, failure))


# What /metrics shows.


def exposition(store: Store, metrics_dir: str | None) -> bytes:
    """The text format of every metric: this host's web processes', the workers' (from Redis), the queue depth.

    A fresh registry each time, as prometheus-client's multiprocess mode requires.
    """
    registry = CollectorRegistry()
    registry.register(_Merged(metrics_dir, store))
    registry.register(_QueueDepth(store))
    return generate_latest(registry)


class _Merged:
    """Baton's metrics with the same samples of the web processes and of the workers added together."""

    def __init__(self, metrics_dir: str | None, store: Store):
        self.metrics_dir = metrics_dir
        self.store = store

    def _web_families(self) -> Iterable[Metric]:
        if self.metrics_dir:
            return MultiProcessCollector(None, path=self.metrics_dir).collect()
        _local_sink()  # so that the families exist in a process that has recorded nothing yet
        return REGISTRY.collect()

    def collect(self) -> Iterator[Metric]:
        specs = {spec.name: spec for spec in SPECS}
        values: dict[str, defaultdict[tuple[str, tuple[tuple[str, str], ...]], float]] = {
            name: defaultdict(float) for name in specs}
        for family in self._web_families():
            if family.name not in specs:
                yield family  # the process's own (single-process mode): CPU, memory, garbage collection
                continue
            for sample in family.samples:
                values[family.name][(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
        for key, value in self._worker_samples().items():
            sample, labels = json.loads(key)
            family = _family_of(sample, specs)
            if family is not None:
                values[family][(sample, tuple(sorted(labels.items())))] += value
        for name, spec in specs.items():
            metric = Metric(name, spec.help, spec.kind)
            for (sample, labels), value in sorted(values[name].items(), key=_sample_order):
                metric.add_sample(sample, dict(labels), value)
            yield metric

    def _worker_samples(self) -> Mapping[str, float]:
        try:
            return self.store.metrics()
        except redis.RedisError as exc:
            log.warning("the workers' metrics are unavailable: %r", exc)
            return {}


def _family_of(sample: str, specs: Mapping[str, Spec]) -> str | None:
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix) and sample.removesuffix(suffix) in specs:
            return sample.removesuffix(suffix)
    return None  # a metric an older version recorded


_SUFFIX_ORDER = {"_bucket": 0, "_count": 1, "_sum": 2}


def _sample_order(item: tuple[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple:
    (sample, labels), _ = item
    series = tuple(pair for pair in labels if pair[0] != "le")
    le = dict(labels).get("le")
    suffix = next((rank for name, rank in _SUFFIX_ORDER.items() if sample.endswith(name)), 0)
    return series, suffix, float(le) if le is not None else 0.0, sample


class _QueueDepth:
    """Messages waiting in Celery's queue, read from the broker at scrape time."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("baton_celery_queue_depth", "Messages waiting in the Celery queue (not yet "
                                   "taken by a worker)", labels=["queue"])
        try:
            family.add_metric([CELERY_QUEUE], self.store.queue_depth(CELERY_QUEUE))
        except redis.RedisError as exc:
            log.warning("the queue depth is unavailable: %r", exc)
        yield family
