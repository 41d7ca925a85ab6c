"""Baton's state in Redis: every key name and (de)serialization lives here.

Keys (all under ``baton:``; Celery's broker keys have their own names in the same database):
  transfer:{id}             JSON: the transfer record and its outbox of actions still to perform
  task:{WT}:active          the id of the task's transfer in progress (one at a time: 409 otherwise)
  conversation:{CH}:transfers  set of the ids of the conversation's transfers in progress
  task:{WT}:transfers       sorted set of the transfers from or to that task, by creation time
  idempotency:{who}:{key}   the transfer a caller's retried request with this Idempotency-Key gets back, and the
                            SHA-256 of that request ("{id} {sha256}"): another request with the key is refused
  event:{EV}                a webhook event already accepted (dedupe), kept a few days
  inbox:{id}                list of JSON: the webhook events accepted for the transfer and not yet applied
  inbox:{id}:scheduled      a job to read that inbox is enqueued or running: events that come meanwhile need no other
  lock:{id}                 the per-transfer lock that serializes all work on one transfer
  settings                  JSON: the admin settings (absent until an administrator changes one)
  token:{sha256}            what IAM said of a Flex token, cached briefly (never past its expiry)
  admin-session:{sha256}    an admin page session, by its id's hash, while it is signed in (sign-out deletes it)
  ratelimit:{subject}       requests (or failures) counted in the current window of a rate limit
  twilio-pace:{AC}:{endpoint}  when the next request to that Twilio endpoint of that account may go (the token
                            bucket that paces Baton's Twilio requests), in milliseconds of Redis's clock
  name:{sid}                a worker's, queue's or workflow's friendly name, cached an hour (baton.infrastructure.names)
  identity:{WK}             the identity Flex gives that worker's agent in conversations, cached an hour (the same)
  workflows                 JSON: the workspace's workflows, [sid, name] pairs, cached a few minutes
  recent                    sorted set of transfer ids by last update (the admin page's list)
  pending                   sorted set of the transfers not yet finished (or with actions left), by last update
  deadlines                 sorted set of the transfers not yet finished, by when they time out (transfer_timeout_s)
  deadlines:swept           when the deadlines were last swept (beat's sweep, run by a worker)
  metrics                   hash: the Celery workers' metric samples (``baton.infrastructure.metrics``), added to
                            every second

Celery's queue (the list ``celery``, and one more list per priority) is read here too, for its length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.lock import Lock

from baton.domain.settings import Settings
from baton.domain.transfers import ACTION_TYPES, Action, Transfer
from baton.infrastructure.config import Config

# Short socket timeouts: a web request must fail fast (503) when Redis is away, not hang.
SOCKET_TIMEOUT_S = 2.0
EVENT_DEDUPE_TTL_S = 3 * 24 * 3600
IDEMPOTENCY_TTL_S = 24 * 3600
DEFAULT_RETENTION_S = 30 * 24 * 3600
DEFAULT_LOCK_TIMEOUT_S = 15
LOCK_WAIT_S = 30
# How long an inbox counts as scheduled without its job finishing with it. Past this, the next event enqueues
# another job (the first was lost, or waits behind a long queue: the later of the two finds the inbox empty);
# a transfer whose events wait in an inbox nobody reads is also caught up by the reconciliation.
INBOX_SCHEDULED_TTL_S = 120
# How often a worker waiting for a transfer's lock tries again. redis-py's default (0.1 s) made every
# event that arrives while its transfer is busy (a re-offer right behind a rejection) wait a tenth of
# a second at least, with one of the worker's few processes idle meanwhile.
LOCK_POLL_S = 0.005
# A renewal asked for within this long of the last one is not sent: the lock still has at least its timeout less
# this (10.5 s at the smallest LOCK_TIMEOUT_S), more than a Twilio call's read timeout. On a transfer's busy path
# (several Twilio calls a few milliseconds apart) that saves two Redis commands a call.
LOCK_RENEW_AFTER_S = 0.5


def connect_redis(url: str) -> redis.Redis:
    """A pooled client for ``url`` with bounded connect and read times."""
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                health_check_interval=25, decode_responses=True)


class TransferLock(Lock):
    """redis-py's lock, whose ``reacquire`` renews it in Redis only when the last renewal (or the acquisition) is
    older than ``LOCK_RENEW_AFTER_S``. Its times are taken before the command is sent, so they are never later
    than Redis's: the lock lasts at least as long as they say."""

    _renewed_at = 0.0

    def do_acquire(self, token: str) -> bool:
        asked_at = time.monotonic()
        acquired = super().do_acquire(token)
        if acquired:
            self._renewed_at = asked_at
        return acquired

    def reacquire(self) -> bool:
        asked_at = time.monotonic()
        if asked_at - self._renewed_at < LOCK_RENEW_AFTER_S:
            return True
        renewed = super().reacquire()
        self._renewed_at = asked_at
        return renewed


@dataclass(frozen=True)
class Record:
    """A transfer with the actions decided for it but not yet carried out (its outbox).

    head_attempts: how many times the first action of the outbox has been tried.
    held_events: TaskRouter events (their fields) that arrived before the transfer knew its new task:
        applied once the invite tells which task is the transfer's, the others dropped.
    """

    transfer: Transfer
    outbox: tuple[Action, ...] = ()
    head_attempts: int = 0
    held_events: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Created:
    """The outcome of ``create``: the transfer now recorded for the request, and whether it is new.

    conflict: the task already had another transfer in progress (that one is ``transfer``).
    key_reused: the Idempotency-Key came with another request, which created ``transfer``.
    """

    transfer: Transfer
    new: bool
    conflict: bool = False
    key_reused: bool = False


# Atomically: an idempotent replay returns the earlier transfer, and a key sent with another request
# names it too; a task with a transfer in progress is a conflict; otherwise the transfer is recorded and
# becomes the task's active one. A key stored before requests were hashed holds the id alone: a replay.
_CREATE = """
local idem_key, active_key, transfer_key, list_key, recent_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local conversation_key, pending_key, deadlines_key = KEYS[6], KEYS[7], KEYS[8]
local id, record, score, idem_ttl, deadline, request_hash = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if idem_key ~= '' then
  local earlier = redis.call('GET', idem_key)
  if earlier then
    local earlier_id, earlier_hash = string.match(earlier, '^(%S+) ?(%S*)$')
    if earlier_hash ~= '' and earlier_hash ~= request_hash then return {'reused', earlier_id} end
    return {'replay', earlier_id}
  end
end
local active = redis.call('GET', active_key)
if active then return {'conflict', active} end
redis.call('SET', active_key, id)
redis.call('SET', transfer_key, record)
redis.call('ZADD', list_key, score, id)
redis.call('ZADD', recent_key, score, id)
redis.call('ZADD', pending_key, score, id)
if deadline ~= '' then redis.call('ZADD', deadlines_key, deadline, id) end
if conversation_key ~= '' then redis.call('SADD', conversation_key, id) end
if idem_key ~= '' then redis.call('SET', idem_key, id .. ' ' .. request_hash, 'EX', idem_ttl) end
return {'created', id}
"""

# Release the task's active marker only if it still names this transfer.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The transfers whose deadline has passed, each pushed back by ARGV[2] seconds: a sweep hands each one
# out once, and again only if the transfer is still not finished that much later. The sweep's time is
# kept (KEYS[2]): ``baton doctor`` tells from it whether beat runs.
_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
redis.call('SET', KEYS[2], ARGV[1])
return due
"""


# Atomically: accept a webhook event once (KEYS[1], its dedupe key), append it to the inbox of each transfer it
# is about (KEYS[2], KEYS[4], …), and mark each inbox as scheduled (KEYS[3], KEYS[5], …). Returns {0} for a
# duplicate, else {1} followed by the 1-based positions of the transfers no job was scheduled for yet: the caller
# enqueues one job for each. Events that arrive while a job waits join its inbox and need no job of their own.
_DELIVER = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return {0} end
local unscheduled = {1}
for i = 2, #KEYS, 2 do
  -- An inbox is emptied by the jobs that read it; one that nobody reads again goes after the dedupe keys' time.
  if redis.call('RPUSH', KEYS[i], ARGV[2]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if redis.call('SET', KEYS[i + 1], 1, 'NX', 'EX', ARGV[3]) then table.insert(unscheduled, i / 2) end
end
return unscheduled
"""


# Atomically: drop the ARGV[1] oldest events of an inbox (KEYS[1]), applied and saved, and count the events left;
# with none left, the inbox is no longer scheduled (KEYS[2]), so that the next event enqueues a job. With some
# left (they came while the job ran), it stays scheduled: the job reads them too, or enqueues its successor.
_FINISH_INBOX = """
if tonumber(ARGV[1]) > 0 then redis.call('LTRIM', KEYS[1], ARGV[1], -1) end
local left = redis.call('LLEN', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[2]) end
return left
"""


# A token bucket kept as one number (GCRA, the generic cell rate algorithm): the theoretical time at which the
# bucket is full again. A bucket of ``capacity`` tokens gaining one every ``interval`` ms lets a request go at
# ``tat - (capacity - 1) * interval``. The caller takes the next slot and waits for it; a wait past ``max_wait``
# takes nothing and is answered instead, so that the caller comes back later. Redis's clock (TIME) is the one
# clock of every process. Returns {1 if a slot was taken else 0, the wait in microseconds}.
_PACE = """
local interval, capacity, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = math.max(0, tat - (capacity - 1) * interval - now)
if wait > max_wait then return {0, math.ceil(wait * 1000)} end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1)
return {1, math.ceil(wait * 1000)}
"""


@dataclass(frozen=True)
class PacedSlot:
    """The answer of ``Store.take_twilio_slot``.

    taken: a slot is the caller's: send the request ``wait_s`` seconds from now.
    wait_s: when not taken, how long the caller would have had to wait (nothing was taken).
    """

    taken: bool
    wait_s: float


class Store:
    """Transfers, their indexes, dedupe keys and settings, under the ``baton:`` prefix."""

    prefix = "baton:"

    @classmethod
    def from_config(cls, config: Config) -> "Store":
        return cls(connect_redis(config.redis_url), retention_s=config.retention_days * 86400,
                   lock_timeout_s=config.lock_timeout_s)

    def __init__(self, client: redis.Redis, retention_s: int = DEFAULT_RETENTION_S,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S):
        self.redis = client
        self.retention_s = retention_s
        self.lock_timeout_s = lock_timeout_s
        self._create = client.register_script(_CREATE)
        self._release = client.register_script(_RELEASE)
        self._due = client.register_script(_DUE)
        self._count_request = client.register_script(self._COUNT_REQUEST)
        self._pace = client.register_script(_PACE)
        self._deliver = client.register_script(_DELIVER)
        self._finish_inbox = client.register_script(_FINISH_INBOX)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def is_reachable(self) -> bool:
        """True when Redis answers a PING."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    # transfers

    def create(self, record: Record, idempotency_key: str | None = None, caller: str | None = None,
               deadline: float | None = None, request_hash: str = "") -> Created:
        """Record a new transfer unless the request is a replay or its task already has one in progress.

        Idempotency keys are the caller's own (``caller``: who sent the request; by default the sender), and
        kept with ``request_hash`` (what the request asked, hashed): the key sent again with another hash is
        ``key_reused``. ``deadline``: when the transfer times out if it is not over by then (``due_deadlines``).
        """
        transfer = record.transfer
        scope = caller or transfer.from_worker_sid
        outcome, transfer_id = self._create(
            keys=[self._key("idempotency", scope, idempotency_key) if idempotency_key else "",
                  self._key("task", transfer.from_task_sid, "active"), self._key("transfer", transfer.id),
                  self._key("task", transfer.from_task_sid, "transfers"), self._key("recent"),
                  self._conversation_key(transfer.conversation_sid) if transfer.conversation_sid else "",
                  self._key("pending"), self._key("deadlines")],
            args=[transfer.id, self._encode(record), transfer.updated_at, IDEMPOTENCY_TTL_S,
                  "" if deadline is None else repr(deadline), request_hash],
        )
        if outcome == "created":
            return Created(transfer, new=True)
        existing = self.load(transfer_id)
        return Created(existing.transfer, new=False, conflict=outcome == "conflict", key_reused=outcome == "reused")

    def load(self, transfer_id: str) -> Record | None:
        return self._decode(self.redis.get(self._key("transfer", transfer_id)))

    def load_with_settings(self, transfer_id: str, defaults: Settings) -> tuple[Record | None, Settings]:
        """The record (as ``load``) and the settings in force (as ``settings``), in one round trip."""
        raw_record, raw_settings = self.redis.mget(self._key("transfer", transfer_id), self._key("settings"))
        return self._decode(raw_record), self._settings_from(raw_settings, defaults)

    @staticmethod
    def _decode(raw: str | None) -> Record | None:
        if raw is None:
            return None
        data = json.loads(raw)
        outbox = tuple(ACTION_TYPES[action.pop("type")](**action) for action in data["outbox"])
        return Record(Transfer.from_dict(data["transfer"]), outbox, data.get("head_attempts", 0),
                      tuple(data.get("held_events", ())))

    def save(self, record: Record, transfer_changed: bool = True) -> None:
        """Store the record; a finished transfer frees its task and expires after the retention period.

        transfer_changed: False when only the outbox or its attempts changed since the last save: the indexes, which
        hold the transfer's status and last update, are then left as they are.
        Only a finished transfer's save is one transaction: it must not leave the transfer in the indexes of the work
        under way. Any other save rewrites the same indexes with newer scores, which the next save repeats.
        """
        transfer = record.transfer
        key = self._key("transfer", transfer.id)
        finished = transfer.is_final and not record.outbox
        if not (transfer_changed or finished):
            self.redis.set(key, self._encode(record))
            return
        with self.redis.pipeline(transaction=finished) as pipe:
            if finished:
                pipe.set(key, self._encode(record), ex=self.retention_s)
                self._release(keys=[self._key("task", transfer.from_task_sid, "active")], args=[transfer.id],
                              client=pipe)
                if transfer.conversation_sid:
                    pipe.srem(self._conversation_key(transfer.conversation_sid), transfer.id)
                pipe.zrem(self._key("pending"), transfer.id)
                pipe.zrem(self._key("deadlines"), transfer.id)
            else:
                pipe.set(key, self._encode(record))
                pipe.zadd(self._key("pending"), {transfer.id: transfer.updated_at})
            pipe.zadd(self._key("recent"), {transfer.id: transfer.updated_at})
            pipe.execute()

    def index_new_task(self, transfer: Transfer, new_task_sid: str) -> None:
        """Make the transfer found by the task it created (``transfers_of_task``), once that task exists."""
        self.redis.zadd(self._key("task", new_task_sid, "transfers"), {transfer.id: transfer.created_at})

    def transfers_of_task(self, task_sid: str) -> list[Transfer]:
        """Every retained transfer from ``task_sid`` or that created it, oldest first."""
        ids = self.redis.zrange(self._key("task", task_sid, "transfers"), 0, -1)
        records = [self.load(transfer_id) for transfer_id in ids]
        return [record.transfer for record in records if record is not None]

    def stale_transfers(self, unchanged_since: float, limit: int = 500) -> list[str]:
        """Transfers not finished (or with actions left) whose record has not moved since ``unchanged_since``."""
        return self.redis.zrangebyscore(self._key("pending"), "-inf", unchanged_since, start=0, num=limit)

    def due_deadlines(self, now: float, again_after_s: float, limit: int = 500) -> list[str]:
        """Transfers past their deadline and not finished; each is handed out again only ``again_after_s`` later."""
        return self._due(keys=[self._key("deadlines"), self._key("deadlines", "swept")],
                         args=[repr(now), repr(again_after_s), limit])

    def last_deadline_sweep(self) -> float | None:
        """When ``due_deadlines`` last ran (beat's sweep, run by a worker), or None if it never has."""
        raw = self.redis.get(self._key("deadlines", "swept"))
        return None if raw is None else float(raw)

    def active_transfers_of_conversation(self, conversation_sid: str) -> list[str]:
        """The ids of the transfers in progress in a conversation (warm transfers can make it several)."""
        return sorted(self.redis.smembers(self._conversation_key(conversation_sid)))

    def _conversation_key(self, conversation_sid: str) -> str:
        return self._key("conversation", conversation_sid, "transfers")

    def active_transfer_id(self, task_sid: str) -> str | None:
        return self.redis.get(self._key("task", task_sid, "active"))

    @contextmanager
    def lock(self, transfer_id: str) -> Iterator[Lock]:
        """Serialize all work on one transfer across worker processes.

        The lock expires after ``lock_timeout_s`` so that a worker killed while holding it blocks no
        one for long; the holder calls ``reacquire()`` on it before each Twilio call.
        """
        with self.redis.lock(self._key("lock", transfer_id), timeout=self.lock_timeout_s, sleep=LOCK_POLL_S,
                             blocking_timeout=LOCK_WAIT_S, lock_class=TransferLock) as lock:
            yield lock

    # settings

    def settings(self, defaults: Settings) -> Settings:
        """The settings in force: the stored ones, else ``defaults`` (seeded from the environment)."""
        return self._settings_from(self.redis.get(self._key("settings")), defaults)

    @staticmethod
    def _settings_from(raw: str | None, defaults: Settings) -> Settings:
        return defaults if raw is None else Settings(**{**defaults.to_dict(), **json.loads(raw)})

    def save_settings(self, settings: Settings) -> None:
        self.redis.set(self._key("settings"), json.dumps(settings.to_dict()))

    # Flex tokens

    def cached_token(self, token_hash: str) -> dict[str, Any] | None:
        raw = self.redis.get(self._key("token", token_hash))
        return None if raw is None else json.loads(raw)

    def cache_token(self, token_hash: str, info: dict[str, Any], ttl_s: int) -> None:
        """Remember what IAM said of a token (by its hash, never the token) for ``ttl_s`` seconds."""
        if ttl_s > 0:
            self.redis.set(self._key("token", token_hash), json.dumps(info), ex=ttl_s)

    # friendly names of TaskRouter's workers, queues and workflows, for the people who read a transfer

    def cached_names(self, sids: Sequence[str]) -> dict[str, str]:
        """The names cached for ``sids`` (one MGET); a sid not cached is missing from the answer."""
        if not sids:
            return {}
        names = self.redis.mget([self._key("name", sid) for sid in sids])
        return {sid: name for sid, name in zip(sids, names, strict=True) if name is not None}

    def cache_names(self, names: Mapping[str, str], ttl_s: int) -> None:
        """Remember each sid's name for ``ttl_s`` seconds: a renamed agent shows under the new name after that."""
        self._set_each({self._key("name", sid): name for sid, name in names.items()}, ttl_s)

    def cached_workers(self, worker_sids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Each worker's cached (name, conversation identity), in one MGET; a worker without both is missing."""
        if not worker_sids:
            return {}
        values = self.redis.mget([key for sid in worker_sids
                                  for key in (self._key("name", sid), self._key("identity", sid))])
        names, identities = values[::2], values[1::2]
        return {sid: (name, identity) for sid, name, identity in zip(worker_sids, names, identities, strict=True)
                if name and identity is not None}

    def cache_workers(self, workers: Mapping[str, tuple[str, str]], ttl_s: int) -> None:
        """Remember each worker's (name, conversation identity) for ``ttl_s`` seconds."""
        self._set_each({key: value for sid, (name, identity) in workers.items()
                        for key, value in ((self._key("name", sid), name), (self._key("identity", sid), identity))},
                       ttl_s)

    def _set_each(self, values: Mapping[str, str], ttl_s: int) -> None:
        """Set each key to its value for ``ttl_s`` seconds, in one round trip."""
        if not values:
            return
        with self.redis.pipeline(transaction=False) as pipeline:
            for key, value in values.items():
                pipeline.set(key, value, ex=ttl_s)
            pipeline.execute()

    def cached_workflows(self) -> list[tuple[str, str]] | None:
        """The workspace's workflows (sid, name) as last listed, or None when the list has expired."""
        raw = self.redis.get(self._key("workflows"))
        return None if raw is None else [(sid, name) for sid, name in json.loads(raw)]

    def cache_workflows(self, workflows: Sequence[tuple[str, str]], ttl_s: int) -> None:
        self.redis.set(self._key("workflows"), json.dumps(list(workflows)), ex=ttl_s)

    # admin page sessions: kept by their id's hash, so that Redis never holds what signs in

    def start_admin_session(self, session_id: str, lifetime_s: int) -> None:
        """Record a signed-in admin session for ``lifetime_s`` seconds."""
        self.redis.set(self._admin_session_key(session_id), 1, ex=lifetime_s)

    def admin_session_is_live(self, session_id: str, lifetime_s: int) -> bool:
        """True while the session is signed in; each use keeps it ``lifetime_s`` seconds more (one round trip)."""
        return bool(self.redis.expire(self._admin_session_key(session_id), lifetime_s))

    def end_admin_session(self, session_id: str) -> None:
        self.redis.delete(self._admin_session_key(session_id))

    def _admin_session_key(self, session_id: str) -> str:
        return self._key("admin-session", hashlib.sha256(session_id.encode()).hexdigest())

    # webhooks

    def deliver_event(self, dedupe_key: str, transfer_ids: Sequence[str],
                      delivery: Mapping[str, Any]) -> list[str] | None:
        """Accept a webhook event once and put it in the inbox of each of these transfers (one round trip).

        None for a duplicate (the event was accepted before); else the transfers that need a job enqueued to read
        their inbox (``take_inbox``): those whose inbox had none scheduled.
        """
        keys = [self._key("event", dedupe_key)]
        for transfer_id in transfer_ids:
            keys += [self._key("inbox", transfer_id), self._key("inbox", transfer_id, "scheduled")]
        answer = self._deliver(keys=keys, args=[EVENT_DEDUPE_TTL_S, json.dumps(delivery), INBOX_SCHEDULED_TTL_S])
        if not answer[0]:
            return None
        return [transfer_ids[position - 1] for position in answer[1:]]

    def undeliver_event(self, dedupe_key: str, unscheduled: Sequence[str]) -> None:
        """After ``deliver_event`` when the jobs could not be enqueued: the event may come again (Twilio sends it
        again after a 5xx), and the next event of these transfers enqueues their job. The event stays in the
        inboxes: applying it twice changes nothing."""
        self.redis.delete(self._key("event", dedupe_key),
                          *(self._key("inbox", transfer_id, "scheduled") for transfer_id in unscheduled))

    def take_inbox(self, transfer_id: str) -> list[dict[str, Any]]:
        """The events in the transfer's inbox, oldest first, left there until ``finish_inbox``. Call it holding the
        transfer's lock."""
        return [json.loads(delivery) for delivery in self.redis.lrange(self._key("inbox", transfer_id), 0, -1)]

    def finish_inbox(self, transfer_id: str, taken: int) -> int:
        """Drop the ``taken`` oldest events of the inbox, applied and saved; the events left, which came meanwhile.
        With none left the inbox is no longer scheduled, and the next event enqueues a job; with some, the caller
        reads them or makes sure a job will."""
        inbox = self._key("inbox", transfer_id)
        return int(self._finish_inbox(keys=[inbox, self._key("inbox", transfer_id, "scheduled")], args=[taken]))

    @staticmethod
    def _encode(record: Record) -> str:
        outbox = [{"type": type(action).__name__, **dataclasses.asdict(action)} for action in record.outbox]
        return json.dumps({"transfer": record.transfer.to_dict(), "outbox": outbox,
                           "head_attempts": record.head_attempts, "held_events": record.held_events},
                          separators=(",", ":"))

    # the admin page

    def recent_transfers(self, limit: int = 50, status: str | tuple[str, ...] | None = None,
                         scan: int = 1000) -> list[Transfer]:
        """The most recently updated transfers, newest first; with ``status`` (a state or several), only those.

        Reads the ``recent`` index: ids whose record has expired are skipped, and dropped from the index.
        At most ``scan`` of the most recent ids are looked at, so filtering by a rare status every few
        seconds costs no more than by a common one.
        """
        wanted = None if status is None else {status} if isinstance(status, str) else set(status)
        key = self._key("recent")
        found: list[Transfer] = []
        expired: list[str] = []
        start, end = 0, max(scan, limit)
        while len(found) < limit and start < end:
            # Newest first, a page at a time; one MGET per page.
            ids = self.redis.zrevrange(key, start, min(start + max(limit, 100), end) - 1)
            if not ids:
                break
            start += len(ids)
            for transfer_id, raw in zip(ids, self.redis.mget([self._key("transfer", i) for i in ids]), strict=True):
                if raw is None:
                    expired.append(transfer_id)
                    continue
                transfer = Transfer.from_dict(json.loads(raw)["transfer"])
                if wanted is None or transfer.status in wanted:
                    found.append(transfer)
                    if len(found) == limit:
                        break
        if expired:
            # A record expires only once its transfer is over, and is never written again.
            self.redis.zrem(key, *expired)
        return found

    # rate limits

    # One fixed window per subject: the first request starts it (and sets its expiry), later ones count.
    _COUNT_REQUEST = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

    def count_request(self, subject: str, window_s: float) -> tuple[int, float]:
        """Count a request of ``subject`` (a worker sid) in its current window of ``window_s`` seconds.

        Returns how many requests the window has counted, this one included, and the seconds until it
        ends. One round trip; the key is ``ratelimit:{subject}``, gone when its window ends.
        """
        # Not the ``limits`` package, measured against it on a local Redis (limits 5.8):
        # its fixed window's ``hit`` answers only "within the limit or not", so the count (the callers log once
        # a window, at the limit) and the seconds left (Retry-After) need ``get_window_stats`` after it: 3 round
        # trips and 340-410 µs a counted request against this script's 1 and 80-145 µs; ``counted_requests``
        # 2 round trips against 1.
        count, ttl_ms = self._count_request(keys=[self._key("ratelimit", subject)],
                                            args=[max(1, int(window_s * 1000))])
        return int(count), int(ttl_ms) / 1000

    def counted_requests(self, subject: str) -> tuple[int, float]:
        """What ``count_request`` has counted for ``subject`` in its current window, and the seconds until the window
        ends, without counting anything: (0, 0.0) outside a window."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key("ratelimit", subject))
            pipe.pttl(self._key("ratelimit", subject))
            count, ttl_ms = pipe.execute()
        return (0, 0.0) if count is None or ttl_ms < 0 else (int(count), ttl_ms / 1000)

    # pacing of Baton's requests to Twilio, shared by every process

    def take_twilio_slot(self, account_sid: str, endpoint: str, per_second: float, capacity: int,
                         max_wait_s: float) -> PacedSlot:
        """Take the next slot of the token bucket of ``endpoint`` of ``account_sid``: ``per_second`` tokens a second,
        ``capacity`` at most. The slot is taken when it comes within ``max_wait_s``; otherwise nothing is taken.

        One round trip, atomic (one script); the key ``twilio-pace:{AC}:{endpoint}`` is gone once the bucket is full.
        """
        # Not the ``limits`` package: its strategies (fixed, moving and sliding windows) answer "now or not", with
        # no turn to take and wait for, so waiting callers would poll and race each other for each freed request.
        taken, wait_us = self._pace(keys=[self._key("twilio-pace", account_sid, endpoint)],
                                    args=[repr(1000 / per_second), max(1, capacity), repr(max_wait_s * 1000)])
        return PacedSlot(bool(taken), int(wait_us) / 1_000_000)

    # metrics

    def add_metrics(self, increments: Mapping[str, float]) -> None:
        """Add to the workers' metric samples, all or none (MULTI).

        ``baton.infrastructure.metrics.sample_key`` names them.
        """
        pipeline = self.redis.pipeline(transaction=True)
        for sample, amount in increments.items():
            pipeline.hincrbyfloat(self._key("metrics"), sample, amount)
        pipeline.execute()

    def metrics(self) -> dict[str, float]:
        """The workers' metric samples: their sums since the hash was created."""
        return {sample: float(value) for sample, value in self.redis.hgetall(self._key("metrics")).items()}

    def queue_depth(self, queue: str) -> int:
        """Messages waiting in the Celery queue ``queue`` (the broker shares this database), whatever their priority."""
        with self.redis.pipeline(transaction=False) as pipe:
            for key in celery_queue_lists(queue):
                pipe.llen(key)
            return sum(pipe.execute())


def celery_queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold a Celery queue's messages: kombu keeps one per priority step (0, 3, 6, 9),
    the queue's own name for priority 0."""
    return [queue] + [f"{queue}\x06\x16{step}" for step in (3, 6, 9)]
