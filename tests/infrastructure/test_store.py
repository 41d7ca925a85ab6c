"""The Redis store against a real Redis: creation rules, saving, indexes, dedupe and the lock."""

from __future__ import annotations

import dataclasses

import pytest

from baton.domain import transfers as t
from baton.infrastructure.store import Record

TASK = "WT" + "0" * 32
SENDER = "WK" + "1" * 32


def a_transfer(transfer_id="tr1", task=TASK) -> t.Transfer:
    return t.Transfer(id=transfer_id, from_task_sid=task, from_worker_sid=SENDER, target_type="queue",
                      target_sid="WQ" + "1" * 32, updated_at=1.0, conversation_sid="CH1")


def test_create_then_load_round_trips(store):
    """A created transfer loads back whole, with its outbox."""
    record = Record(a_transfer(), (t.Prepare(), t.Reroute({"transferTargetType": "queue"}, 2, 1)),
                    held_events=({"EventType": "reservation.created", "TaskSid": "WT1"},))
    assert store.create(record).new
    assert store.load("tr1") == record
    assert store.active_transfer_id(TASK) == "tr1"


def test_second_transfer_of_a_task_conflicts(store):
    """A task with a transfer in progress refuses another one and names the one in progress."""
    store.create(Record(a_transfer("tr1")))
    created = store.create(Record(a_transfer("tr2")))
    assert (created.new, created.conflict, created.transfer.id) == (False, True, "tr1")
    assert store.load("tr2") is None


def test_idempotency_key_replays_the_same_transfer(store):
    """The same Idempotency-Key from the same agent gets the first transfer back, not a conflict."""
    store.create(Record(a_transfer("tr1")), idempotency_key="k1")
    replay = store.create(Record(a_transfer("tr2")), idempotency_key="k1")
    assert (replay.new, replay.conflict, replay.transfer.id) == (False, False, "tr1")


def test_idempotency_key_is_kept_with_its_requests_hash(store):
    """A key comes back with its request's hash: the same hash replays, another is key_reused (naming the first
    transfer), and neither records anything."""
    store.create(Record(a_transfer("tr1")), idempotency_key="k1", request_hash="a" * 64)
    assert store.redis.get(f"baton:idempotency:{SENDER}:k1") == "tr1 " + "a" * 64
    replay = store.create(Record(a_transfer("tr2")), idempotency_key="k1", request_hash="a" * 64)
    reused = store.create(Record(a_transfer("tr3")), idempotency_key="k1", request_hash="b" * 64)
    assert (replay.new, replay.key_reused, replay.transfer.id) == (False, False, "tr1")
    assert (reused.new, reused.conflict, reused.key_reused, reused.transfer.id) == (False, False, True, "tr1")
    assert store.load("tr2") is None and store.load("tr3") is None


def test_finishing_frees_the_task_and_sets_retention(store):
    """A final transfer releases its task for a new transfer and expires after the retention period."""
    store.create(Record(a_transfer("tr1")))
    store.save(Record(dataclasses.replace(a_transfer("tr1"), status=t.COMPLETED)))
    assert store.active_transfer_id(TASK) is None
    assert 0 < store.redis.ttl("baton:transfer:tr1") <= store.retention_s
    assert store.create(Record(a_transfer("tr2"))).new
    assert [x.id for x in store.transfers_of_task(TASK)] == ["tr1", "tr2"]


def test_transfers_are_found_by_their_new_task_too(store):
    """Once a transfer has created its task, looking up that task finds the transfer."""
    store.create(Record(a_transfer("tr1")))
    store.index_new_task(a_transfer("tr1"), "WT" + "7" * 32)
    assert [x.id for x in store.transfers_of_task("WT" + "7" * 32)] == ["tr1"]
    assert [x.id for x in store.transfers_of_task(TASK)] == ["tr1"]


def test_a_save_that_changes_only_the_outbox_leaves_the_indexes(store):
    """Saving attempts or a shorter outbox rewrites the record alone; a changed transfer moves its indexes."""
    store.create(Record(a_transfer("tr1")))
    moved = dataclasses.replace(a_transfer("tr1"), updated_at=5.0)
    store.save(Record(moved, (t.Prepare(),), head_attempts=1), transfer_changed=False)
    assert store.load("tr1").head_attempts == 1
    assert store.redis.zscore("baton:recent", "tr1") == store.redis.zscore("baton:pending", "tr1") == 1.0
    store.save(Record(moved))
    assert store.redis.zscore("baton:recent", "tr1") == store.redis.zscore("baton:pending", "tr1") == 5.0


def test_conversations_know_their_transfers_in_progress(store):
    """A conversation lists its transfers in progress, and forgets each one that ends."""
    store.create(Record(a_transfer("tr1")))
    store.create(Record(a_transfer("tr2", task="WT" + "5" * 32)))
    assert store.active_transfers_of_conversation("CH1") == ["tr1", "tr2"]
    store.save(Record(dataclasses.replace(a_transfer("tr1"), status=t.CANCELED)))
    assert store.active_transfers_of_conversation("CH1") == ["tr2"]


def test_final_transfer_with_pending_actions_keeps_its_task(store):
    """A transfer that failed but still has to cancel its new task stays until the outbox is done."""
    store.create(Record(a_transfer("tr1")))
    store.save(Record(dataclasses.replace(a_transfer("tr1"), status=t.FAILED), (t.CancelNewTask("failed"),)))
    assert store.active_transfer_id(TASK) == "tr1"
    assert store.redis.ttl("baton:transfer:tr1") == -1


def test_deadlines_are_handed_out_when_due_and_again_only_much_later(store):
    """A transfer's deadline is due once its time has passed; a sweep hands it out, the next sweeps not until
    ``again_after_s`` later (the transfer still not finished), and never once the transfer is over."""
    store.create(Record(a_transfer("tr1")), deadline=100.0)
    store.create(Record(a_transfer("tr2", task="WT" + "5" * 32)), deadline=200.0)
    store.create(Record(a_transfer("tr3", task="WT" + "6" * 32)))
    assert store.due_deadlines(99.0, again_after_s=60) == []
    assert store.due_deadlines(150.0, again_after_s=60) == ["tr1"]
    assert store.due_deadlines(205.0, again_after_s=60) == ["tr2"]
    assert store.due_deadlines(210.1, again_after_s=60) == ["tr1"]
    store.save(Record(dataclasses.replace(a_transfer("tr2", task="WT" + "5" * 32), status=t.FAILED)))
    assert store.due_deadlines(10_000.0, again_after_s=60) == ["tr1"]


def test_an_event_is_delivered_once_and_one_job_is_asked_for_while_none_is_scheduled(store):
    """An event goes into each of its transfers' inboxes once (a copy with the same dedupe key is a duplicate);
    only a transfer with no job scheduled asks for one. Events that come while the job runs need none: the job
    finishing with its inbox learns they are left, and only an emptied inbox asks for a job at the next event."""
    assert store.deliver_event("EV1", ["tr1", "tr2"], {"n": 1}) == ["tr1", "tr2"]
    assert store.deliver_event("EV1", ["tr1", "tr2"], {"n": 1}) is None
    assert store.deliver_event("EV2", ["tr1"], {"n": 2}) == []
    assert store.take_inbox("tr1") == [{"n": 1}, {"n": 2}]
    assert store.deliver_event("EV3", ["tr1"], {"n": 3}) == []
    assert store.finish_inbox("tr1", 2) == 1
    assert store.deliver_event("EV4", ["tr1"], {"n": 4}) == []
    assert store.take_inbox("tr1") == [{"n": 3}, {"n": 4}]
    assert store.finish_inbox("tr1", 2) == 0
    assert store.deliver_event("EV5", ["tr1"], {"n": 5}) == ["tr1"]
    assert store.take_inbox("tr2") == [{"n": 1}]


def test_an_event_that_could_not_be_enqueued_can_come_again(store):
    """Undelivering forgets the event's dedupe key and the inboxes' scheduled jobs, so that Twilio's next copy of it
    is accepted and asks for the jobs again; the first copy stays in the inbox (applying it twice changes nothing)."""
    assert store.deliver_event("EV1", ["tr1"], {"n": 1}) == ["tr1"]
    store.undeliver_event("EV1", ["tr1"])
    assert store.deliver_event("EV1", ["tr1"], {"n": 1}) == ["tr1"]
    assert store.take_inbox("tr1") == [{"n": 1}, {"n": 1}]


def test_lock_serializes_work_on_one_transfer(store):
    """While one holder has a transfer's lock, another cannot take it."""
    with store.lock("tr1"):
        other = store.redis.lock("baton:lock:tr1", blocking_timeout=0.05)
        assert other.acquire() is False
    assert other.acquire() is True


def test_settings_default_until_saved(store):
    """Settings are the seeded defaults until an administrator saves a change."""
    from baton.domain.settings import Settings

    defaults = Settings(max_attempts=3)
    assert store.settings(defaults) == defaults
    store.save_settings(Settings(notes_enabled=False))
    assert store.settings(defaults) == Settings(notes_enabled=False)


def test_token_cache_expires(store):
    """A cached token answer lives only as long as asked, and a non-positive lifetime caches nothing."""
    store.cache_token("h1", {"valid": True}, ttl_s=60)
    store.cache_token("h2", {"valid": True}, ttl_s=0)
    assert store.cached_token("h1") == {"valid": True}
    assert 0 < store.redis.ttl("baton:token:h1") <= 60
    assert store.cached_token("h2") is None


def test_unfinished_transfers_that_stopped_moving_are_found(store):
    """Transfers not finished and unchanged since a time are listed; finished ones never are."""
    store.create(Record(dataclasses.replace(a_transfer("tr1"), updated_at=10.0)))
    store.create(Record(dataclasses.replace(a_transfer("tr2", task="WT" + "5" * 32), updated_at=50.0)))
    assert store.stale_transfers(unchanged_since=20.0) == ["tr1"]
    store.save(Record(dataclasses.replace(a_transfer("tr1"), status=t.COMPLETED, updated_at=60.0)))
    assert store.stale_transfers(unchanged_since=100.0) == ["tr2"]


def test_counting_requests_reuses_the_script_registered_with_the_store(store, monkeypatch):
    """The rate limit's script is registered once, when the store is made, not again for every counted request."""
    registered = []
    monkeypatch.setattr(store.redis, "register_script", registered.append)
    assert [store.count_request("WK1", 10)[0] for _ in range(3)] == [1, 2, 3]
    count, remaining_s = store.counted_requests("WK1")
    assert count == 3 and 9 < remaining_s <= 10
    assert registered == []


def test_an_inbox_nobody_reads_expires_with_the_dedupe_keys(store):
    """An inbox is given the dedupe keys' lifetime when its first event arrives; an emptied inbox is gone, and the
    next event gives the new one its lifetime again."""
    key = "baton:inbox:tr1"
    store.deliver_event("EV1", ["tr1"], {"n": 1})
    assert 0 < store.redis.ttl(key) <= 3 * 24 * 3600
    store.redis.expire(key, 100)
    store.deliver_event("EV2", ["tr1"], {"n": 2})
    assert store.redis.ttl(key) <= 100
    assert store.finish_inbox("tr1", 2) == 0
    assert store.redis.exists(key) == 0
    store.deliver_event("EV3", ["tr1"], {"n": 3})
    assert store.redis.ttl(key) > 100


def test_a_lock_renewed_moments_ago_is_not_renewed_again_and_a_lost_one_is_told(store, monkeypatch):
    """Renewals asked for within LOCK_RENEW_AFTER_S of the last one send nothing; a later one renews the lock to its
    whole timeout, and tells the holder when the lock is no longer theirs."""
    from redis.exceptions import LockNotOwnedError

    from baton.infrastructure import store as store_module

    now = [1000.0]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: now[0])
    with store.lock("tr1") as lock:
        store.redis.pexpire("baton:lock:tr1", 5000)
        now[0] += store_module.LOCK_RENEW_AFTER_S / 2
        assert lock.reacquire() is True
        assert store.redis.pttl("baton:lock:tr1") <= 5000
        now[0] += store_module.LOCK_RENEW_AFTER_S
        assert lock.reacquire() is True
        assert store.redis.pttl("baton:lock:tr1") > 5000
        own_token = store.redis.get("baton:lock:tr1")
        store.redis.set("baton:lock:tr1", "someone else's token")
        now[0] += store_module.LOCK_RENEW_AFTER_S
        with pytest.raises(LockNotOwnedError):
            lock.reacquire()
        store.redis.set("baton:lock:tr1", own_token)
