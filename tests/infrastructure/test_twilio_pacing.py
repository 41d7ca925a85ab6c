"""Pacing of Baton's Twilio requests: the token bucket in Redis (``Store.take_twilio_slot``) and the gateway's
``TwilioPacer`` over it, against a real Redis; two Store objects on their own connections stand for two processes."""

from __future__ import annotations

import threading
import time

import pytest

from baton.infrastructure.store import Store, connect_redis
from baton.infrastructure.twilio_gateway import RetryableTwilioError, TwilioPacer

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
INTERVAL_S = 1 / 20


def assert_waits(measured: list[float], expected: list[float], since: float) -> None:
    """Each wait is the one expected, less the time that went by between the first request and its own (Redis's clock
    runs on while the test runs; a busy machine makes that time long)."""
    elapsed = time.monotonic() - since
    assert len(measured) == len(expected)
    for wait, due in zip(measured, expected, strict=True):
        assert max(due - elapsed, 0) - 0.002 <= wait <= due + 0.002, (measured, expected, elapsed)


def waits(store: Store, count: int, *, endpoint="invites.create", account=ACCOUNT, per_second=20.0, capacity=1,
          max_wait_s=10.0) -> list[float]:
    slots = [store.take_twilio_slot(account, endpoint, per_second, capacity, max_wait_s) for _ in range(count)]
    assert all(slot.taken for slot in slots)
    return [slot.wait_s for slot in slots]


def test_a_full_bucket_lets_its_capacity_go_at_once_then_one_per_interval(store):
    """Five tokens go without waiting; each request after them waits one more interval (50 ms at 20/s)."""
    since = time.monotonic()
    assert_waits(waits(store, 8, capacity=5), [0, 0, 0, 0, 0, 0.05, 0.10, 0.15], since)


def test_the_bucket_refills_at_its_rate(store):
    """Emptied, the bucket has a token again after one interval, and is full again (no key left) after it all."""
    since = time.monotonic()
    waits(store, 3, capacity=3)
    assert_waits(waits(store, 1, capacity=3), [INTERVAL_S], since)
    time.sleep(4 * INTERVAL_S + 0.02)
    assert store.redis.exists(f"baton:twilio-pace:{ACCOUNT}:invites.create") == 0
    assert waits(store, 3, capacity=3) == [0, 0, 0]


def test_a_slot_too_far_away_is_not_taken(store):
    """A caller that would wait past its maximum takes nothing: it learns the wait, and the next caller's turn
    is where it would have been."""
    since = time.monotonic()
    waits(store, 5)
    refused = store.take_twilio_slot(ACCOUNT, "invites.create", 20.0, 1, 0.1)
    assert not refused.taken
    assert_waits([refused.wait_s], [5 * INTERVAL_S], since)
    assert_waits(waits(store, 1), [5 * INTERVAL_S], since)


def test_two_processes_share_one_bucket(redis_url):
    """Slots taken through one connection make the other's callers wait: one budget for every process."""
    web, worker = Store(connect_redis(redis_url)), Store(connect_redis(redis_url))
    since = time.monotonic()
    waits(web, 2, capacity=2)
    assert_waits(waits(worker, 2, capacity=2), [INTERVAL_S, 2 * INTERVAL_S], since)


def test_endpoints_and_accounts_have_their_own_buckets(store):
    """Spending the invites' budget leaves another endpoint's and another account's untouched."""
    waits(store, 3)
    assert waits(store, 1, endpoint="participants.update") == [0]
    assert waits(store, 1, account=OTHER_ACCOUNT) == [0]


def test_concurrent_callers_each_get_a_slot_of_their_own(redis_url):
    """Forty callers on their own connections at once take forty slots: the bucket's next turn is forty intervals
    after the first caller's, none lost to a race."""
    stores = [Store(connect_redis(redis_url)) for _ in range(8)]
    start = threading.Barrier(len(stores))
    refused: list[float] = []

    def take(store: Store) -> None:
        start.wait()
        for _ in range(5):
            if not store.take_twilio_slot(ACCOUNT, "invites.create", 20.0, 1, 10.0).taken:
                refused.append(1)

    threads = [threading.Thread(target=take, args=(store,)) for store in stores]
    seconds, micros = stores[0].redis.time()
    began_ms = seconds * 1000 + micros / 1000
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, micros = stores[0].redis.time()
    ended_ms = seconds * 1000 + micros / 1000
    next_turn_ms = float(stores[0].redis.get(f"baton:twilio-pace:{ACCOUNT}:invites.create"))
    assert refused == []
    assert began_ms + 40 * 50 <= next_turn_ms <= ended_ms + 40 * 50


class Sleeps:
    """A stand-in for time.sleep that records what the pacer slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_the_pacer_sleeps_until_its_turn(store):
    """A request behind the bucket's capacity sleeps its wait; requests of endpoints without a limit never ask."""
    sleeps = Sleeps()
    pacer = TwilioPacer(store, ACCOUNT, {"invites.create": 4}, max_wait_s=1.0, sleep=sleeps)
    for _ in range(3):
        pacer.wait_turn("invites.create")
    pacer.wait_turn("tasks.fetch")
    assert sleeps.slept == pytest.approx([0.25, 0.5], abs=0.02)
    assert store.redis.keys("baton:twilio-pace:*") == [f"baton:twilio-pace:{ACCOUNT}:invites.create"]


def test_a_turn_too_far_away_is_a_retryable_error_with_the_wait(store):
    """Past the longest wait the pacer raises RetryableTwilioError with the wait as retry_after, sleeping nothing."""
    sleeps = Sleeps()
    pacer = TwilioPacer(store, ACCOUNT, {"invites.create": 2}, max_wait_s=0.6, sleep=sleeps)
    pacer.wait_turn("invites.create")
    pacer.wait_turn("invites.create")
    with pytest.raises(RetryableTwilioError) as paced:
        pacer.wait_turn("invites.create")
    assert (paced.value.endpoint, paced.value.status) == ("invites.create", None)
    assert paced.value.retry_after == pytest.approx(1.0, abs=0.02)
    assert sleeps.slept == pytest.approx([0.5], abs=0.02)


def test_cancelling_a_task_spends_the_budget_of_updating_it(store):
    """tasks.cancel is a POST to the task like tasks.update: both draw on Twilio's one endpoint."""
    sleeps = Sleeps()
    pacer = TwilioPacer(store, ACCOUNT, {"tasks.update": 4}, max_wait_s=1.0, sleep=sleeps)
    pacer.wait_turn("tasks.update")
    pacer.wait_turn("tasks.cancel")
    assert sleeps.slept == pytest.approx([0.25], abs=0.02)


def test_without_redis_requests_go_unpaced_for_a_while(caplog):
    """When Redis does not answer, the request goes at once, and the next ones do not ask Redis again for 30 s."""
    now = [0.0]
    unreachable = Store(connect_redis("redis://127.0.0.1:9/0"))
    pacer = TwilioPacer(unreachable, ACCOUNT, {"invites.create": 20}, max_wait_s=1.0, clock=lambda: now[0])
    asked: list[str] = []
    take = unreachable.take_twilio_slot
    unreachable.take_twilio_slot = lambda *args: asked.append(args[1]) or take(*args)
    pacer.wait_turn("invites.create")
    now[0] = 29.0
    pacer.wait_turn("invites.create")
    assert asked == ["invites.create"]
    assert "unpaced" in caplog.text
    now[0] = 31.0
    pacer.wait_turn("invites.create")
    assert len(asked) == 2
