"""The transfer engine against real Redis and the simulator, without Celery: crashes, retries, permanent errors.

A gateway subclass injects the failures; everything else is the real thing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import threading
import time
import typing

import pytest

from baton.domain import transfers as t
from baton.domain.settings import Settings
from baton.infrastructure.config import Config
from baton.infrastructure.engine import (
    MAX_ACTION_ATTEMPTS,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_DELAY_S,
    Outcome,
    TransferEngine,
    retry_delay,
)
from baton.infrastructure.store import Record, Store, connect_redis
from baton.infrastructure.twilio_gateway import (
    PermanentTwilioError,
    RetryableTwilioError,
    TwilioGateway,
    build_twilio_client,
)
from simulator import Simulator
from simulator.scenario import build_default_scenario, open_conversation
from workers.celery_app import VISIBILITY_TIMEOUT_S
from workers.tasks import RETRY_POLICY


class Crash(BaseException):
    """The worker process dying mid-task (not an Exception: nothing in Baton may catch it)."""


class FaultyGateway(TwilioGateway):
    """The real gateway, with scripted failures: ``faults[method]`` is a list of exceptions raised in turn."""

    def __init__(self, client, workspace_sid):
        super().__init__(client, workspace_sid)
        self.faults: dict[str, list[BaseException]] = {}
        self.crash_after: set[str] = set()

    def _fault(self, name):
        if self.faults.get(name):
            raise self.faults[name].pop(0)

    def create_invite(self, *args, **kwargs):
        self._fault("create_invite")
        invite = super().create_invite(*args, **kwargs)
        if "create_invite" in self.crash_after:
            self.crash_after.discard("create_invite")
            raise Crash()
        return invite

    def fetch_task(self, *args, **kwargs):
        self._fault("fetch_task")
        return super().fetch_task(*args, **kwargs)

    def post_message(self, *args, **kwargs):
        self._fault("post_message")
        return super().post_message(*args, **kwargs)


@pytest.fixture
def world(redis_url):
    with Simulator(time_scale=0.05) as sim:
        sim.serve()
        scenario = build_default_scenario(sim)
        config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                        twilio_workspace_sid=scenario.workspace_sid,
                        transfer_workflow_sid=scenario.transfer_workflow_sid,
                        public_base_url="https://baton.example.com", twilio_api_base=sim.url, redis_url=redis_url)
        gateway = FaultyGateway(build_twilio_client(config), scenario.workspace_sid)
        store = Store(connect_redis(redis_url))
        yield sim, scenario, store, gateway, TransferEngine(store, gateway, config)


def request_transfer(store, conversation, to) -> str:
    transfer = t.Transfer(id=t.new_transfer_id(), from_task_sid=conversation.task_sid,
                          from_worker_sid=conversation.worker_sid, target_type=t.target_type_of(to), target_sid=to)
    step = t.start(transfer, time.time())
    store.create(Record(step.transfer, step.actions))
    return transfer.id


def invites(sim, conversation):
    return sim.requests.find("POST", f"/Channels/{conversation.channel_sid}/Invites")


def test_run_creates_the_invite_and_empties_the_outbox(world):
    """Running a requested transfer reads the original task and creates exactly one invite."""
    sim, scenario, store, _, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])

    assert engine.run(transfer_id).retry_in is None
    record = store.load(transfer_id)
    assert (record.transfer.status, record.outbox) == (t.ROUTING, ())
    assert sim.taskrouter.task(record.transfer.new_task_sid).attributes["transfer"]["id"] == transfer_id
    assert len(invites(sim, conversation)) == 1
    engine.run(transfer_id)
    assert len(invites(sim, conversation)) == 1


def test_crash_after_the_invite_never_creates_a_second(world):
    """A worker dying right after Twilio created the invite leaves a record from which the rerun finds it."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    gateway.crash_after.add("create_invite")

    with pytest.raises(Crash):
        engine.run(transfer_id)
    assert store.load(transfer_id).transfer.new_task_sid is None
    engine.run(transfer_id)

    assert len(invites(sim, conversation)) == 1
    (invite,) = invites(sim, conversation)
    assert store.load(transfer_id).transfer.new_task_sid is not None
    assert sim.requests.find("GET", f"/Channels/{conversation.channel_sid}/Invites")


def test_retryable_error_asks_for_a_retry_honouring_retry_after(world):
    """A 429 with Retry-After keeps the outbox and asks to run again after that many seconds."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    gateway.faults["fetch_task"] = [RetryableTwilioError("tasks.fetch", "Too Many Requests", 429, 20429, 7.0)]

    assert engine.run(transfer_id).retry_in == 7.0
    record = store.load(transfer_id)
    assert (record.transfer.status, record.outbox, record.head_attempts) == (t.REQUESTED, (t.Prepare(),), 1)
    assert engine.run(transfer_id).retry_in is None
    assert store.load(transfer_id).transfer.status == t.ROUTING


def test_errors_that_keep_coming_end_the_transfer_failed(world):
    """After the last attempt a retryable error fails the transfer with Twilio's code, never looping."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    gateway.faults["fetch_task"] = [RetryableTwilioError("tasks.fetch", "Service Unavailable", 503, 20503)
                                    for _ in range(MAX_ACTION_ATTEMPTS)]

    delays = [engine.run(transfer_id).retry_in for _ in range(MAX_ACTION_ATTEMPTS)]
    assert all(delay is not None for delay in delays[:-1]) and delays[-1] is None
    transfer = store.load(transfer_id).transfer
    assert (transfer.status, transfer.failure_code) == (t.FAILED, 20503)
    assert invites(sim, conversation) == []


def test_permanent_error_fails_the_transfer_with_twilio_code(world):
    """A permanent error (a target that does not exist) fails the transfer at once with Twilio's code."""
    sim, scenario, store, _, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, "WK" + "0" * 32)

    assert engine.run(transfer_id).retry_in is None
    transfer = store.load(transfer_id).transfer
    assert (transfer.status, transfer.failure_code) == (t.FAILED, 20404)
    assert transfer.timeline[-1].event == "prepare failed"
    assert invites(sim, conversation) == []


def test_events_about_another_task_are_ignored(world):
    """An event whose TaskSid is not the transfer's new task changes nothing."""
    sim, scenario, store, _, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    engine.run(transfer_id)
    before = store.load(transfer_id)

    engine.taskrouter_event(transfer_id, {"EventType": "reservation.accepted", "TaskSid": "WT" + "1" * 32,
                                          "ReservationSid": "WR" + "1" * 32, "WorkerSid": scenario.agents["carol"]})
    assert store.load(transfer_id) == before


def test_retry_delay_backs_off_with_jitter_and_honours_retry_after():
    """Backoff doubles up to a cap, jittered; Retry-After wins but is capped."""
    assert 0.5 <= retry_delay(1, None) <= 1.0
    assert 4.0 <= retry_delay(4, None) <= 8.0
    assert retry_delay(30, None) <= 60.0
    assert retry_delay(1, 12.0) == 12.0
    assert retry_delay(1, 10_000.0) == 300.0


def test_the_tasks_back_off_no_longer_than_the_engine_and_far_within_the_visibility_timeout():
    """One cap on backoff for the engine's actions and the Celery tasks, and no retry waits near the visibility
    timeout (which would deliver the message again while it waits)."""
    assert RETRY_POLICY["retry_backoff_max"] == MAX_RETRY_DELAY_S == 60
    assert max(MAX_RETRY_DELAY_S, MAX_RETRY_AFTER_S) * 10 <= VISIBILITY_TIMEOUT_S


def test_a_long_conversation_costs_no_more_requests_than_a_short_one(world):
    """Transferring a 100,000-message conversation reads at most 2 pages, and the context is its newest messages."""
    sim, scenario, store, _, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    for n in range(100_000):
        sim.conversations.add_message(conversation.conversation_sid, "alice", f"message {n}", webhooks=False)
    before = len(sim.requests.find("GET", "/Messages"))
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    engine.run(transfer_id)

    assert len(sim.requests.find("GET", "/Messages")) - before <= 2
    attributes = sim.taskrouter.task(store.load(transfer_id).transfer.new_task_sid).attributes
    context = attributes["transfer"]["context"]
    assert context["message_count"] == 100_002
    assert context["messages"][-1]["body"] == "message 99999"
    assert len(json.dumps(attributes, separators=(",", ":"))) <= 4096


def test_email_context_keeps_the_subject(world):
    """An email conversation's new task carries the subject and the text of the emails."""
    sim, scenario, store, _, engine = world
    email = open_conversation(sim, scenario, "alice", channel_type="email", messages=())
    sim.conversations.add_message(email.conversation_sid, "alice", "<p>We are on it.</p>",
                                  attributes={"subject": "Re: Refund for order 4417"}, webhooks=False)
    transfer_id = request_transfer(store, email, scenario.agents["carol"])
    engine.run(transfer_id)

    transfer = store.load(transfer_id).transfer
    assert transfer.context["subject"] == "Re: Refund for order 4417"
    new_task = sim.taskrouter.task(transfer.new_task_sid)
    assert new_task.attributes["transfer"]["context"]["messages"][-1]["body"] == "We are on it."
    assert new_task.task_channel.unique_name == "email"


def test_customer_notice_is_posted_once_and_says_nothing_internal(world):
    """With the notice on, one message reaches the conversation, without notes, summary or context."""
    sim, scenario, store, _, engine = world
    store.save_settings(Settings(customer_notice_enabled=True))
    conversation = open_conversation(sim, scenario, "alice")
    transfer = t.Transfer(id=t.new_transfer_id(), from_task_sid=conversation.task_sid,
                          from_worker_sid=conversation.worker_sid, target_type="worker",
                          target_sid=scenario.agents["carol"], notes="angry about order 4417")
    step = t.start(transfer, time.time())
    store.create(Record(step.transfer, step.actions))
    engine.run(transfer.id)
    engine.run(transfer.id)

    posted = sim.requests.find("POST", f"/Conversations/{conversation.conversation_sid}/Messages")
    assert len(posted) == 1
    assert posted[0].params["Body"] == "Connecting you with a specialist…"
    assert "4417" not in json.dumps(posted[0].params)


def test_a_customer_notice_that_cannot_be_posted_never_stops_the_transfer(world):
    """The conversation is gone when the notice is posted (a permanent 404): the notice is dropped, the outbox
    empties and the transfer routes on, instead of the notice staying stuck at the head of the outbox."""
    sim, scenario, store, gateway, engine = world
    store.save_settings(Settings(customer_notice_enabled=True))
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    gateway.faults["post_message"] = [PermanentTwilioError("messages.create", "The requested resource was not found",
                                                           404, 20404)]

    assert engine.run(transfer_id).retry_in is None
    record = store.load(transfer_id)
    assert record.outbox == ()
    assert record.transfer.status in (t.ROUTING, t.OFFERED, t.ACCEPTED, t.COMPLETED)
    assert record.transfer.new_task_sid is not None


def test_every_action_type_says_its_name_and_whether_its_failure_fails_the_transfer():
    """Each action the state machine can ask for describes itself."""
    for action_type in t.ACTION_TYPES.values():
        assert action_type.name and isinstance(action_type.once_only, bool)
        assert isinstance(action_type.fails_transfer, bool)
    assert {name for name, cls in t.ACTION_TYPES.items() if cls.once_only} == {
        "CreateInvite", "CloseSender", "NotifyCustomer"}


def test_every_action_type_has_a_performer_in_the_engines_one_table():
    """Every action type of the state machine (the Action union, every class with action traits, the registry the
    store reads outboxes with) has a performer in the engine's dispatch table, and the table names nothing else."""
    declared = set(typing.get_args(t.Action))
    assert declared == set(t._ActionTraits.__subclasses__()) == set(t.ACTION_TYPES.values())
    assert set(TransferEngine.PERFORMERS) == declared
    assert all(callable(performer) for performer in TransferEngine.PERFORMERS.values())


class LockRecordingStore(Store):
    """The real store, noting each renewal of a transfer's lock: (the renewing thread's name, whose lock it is)."""

    def __init__(self, client):
        super().__init__(client)
        self.renewals: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def lock(self, transfer_id):
        with super().lock(transfer_id) as lock:
            renew = lock.reacquire

            def recorded_renewal():
                self.renewals.append((threading.current_thread().name, transfer_id))
                return renew()

            lock.reacquire = recorded_renewal
            yield lock


def test_one_engine_on_two_threads_renews_each_transfers_own_lock(world):
    """Two transfers prepared at once by one engine on two threads (a worker's thread pool): each thread renews
    only its own transfer's lock, and both transfers go on to routing."""
    sim, scenario, _, gateway, engine = world
    store = LockRecordingStore(engine.store.redis)
    engine.store = store
    conversations = [open_conversation(sim, scenario, "alice") for _ in range(2)]
    transfer_ids = [request_transfer(store, conversation, scenario.agents["carol"]) for conversation in conversations]
    # Both threads are inside their transfer's preparation, each holding its lock, before either renews it.
    both_preparing = threading.Barrier(2, timeout=10)
    fetch_task = gateway.fetch_task

    def fetch_task_once_both_prepare(task_sid, *args, **kwargs):
        if task_sid in {conversation.task_sid for conversation in conversations}:
            both_preparing.wait()
        return fetch_task(task_sid, *args, **kwargs)

    gateway.fetch_task = fetch_task_once_both_prepare
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="worker") as pool:
        runs = {transfer_id: pool.submit(engine.run, transfer_id) for transfer_id in transfer_ids}
        outcomes = {transfer_id: run.result(timeout=30) for transfer_id, run in runs.items()}

    assert all(outcome.retry_in is None for outcome in outcomes.values())
    assert [store.load(transfer_id).transfer.status for transfer_id in transfer_ids] == [t.ROUTING, t.ROUTING]
    threads_of = {transfer_id: {thread for thread, renewed in store.renewals if renewed == transfer_id}
                  for transfer_id in transfer_ids}
    assert all(len(threads) == 1 for threads in threads_of.values())
    assert threads_of[transfer_ids[0]] != threads_of[transfer_ids[1]]
    assert len([renewal for renewal in store.renewals if renewal[1] == transfer_ids[0]]) >= 3


def test_an_event_for_another_task_before_the_invite_is_known_never_moves_the_transfer(world):
    """While the invite is still being retried, a signed event naming the transfer but about another task (a
    forged or stale one) is held, and dropped once the invite tells which task is the transfer's."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    gateway.faults["create_invite"] = [RetryableTwilioError("invites.create", "Service Unavailable", 503, 20503)
                                       for _ in range(2)]
    assert engine.run(transfer_id).retry_in is not None

    engine.taskrouter_event(transfer_id, {"EventType": "reservation.accepted", "TaskSid": "WT" + "1" * 32,
                                          "ReservationSid": "WR" + "1" * 32, "WorkerSid": scenario.agents["bob"]})
    held = store.load(transfer_id)
    assert (held.transfer.status, held.transfer.accepted_worker_sid, len(held.held_events)) == (t.ROUTING, None, 1)

    engine.run(transfer_id)
    record = store.load(transfer_id)
    assert record.transfer.new_task_sid not in (None, "WT" + "1" * 32)
    assert record.transfer.accepted_worker_sid is None and record.held_events == ()
    assert not sim.requests.find("POST", f"/Channels/{conversation.channel_sid}/Participants/")


def test_an_event_of_the_new_task_that_overtakes_the_invite_answer_is_applied_once_the_invite_is_known(world):
    """The invite went through but the worker died before recording it; the new task's first offer arrives
    meanwhile: it waits until the invite is found again, then counts."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    carol = scenario.agents["carol"]
    transfer_id = request_transfer(store, conversation, carol)
    gateway.crash_after.add("create_invite")
    with pytest.raises(Crash):
        engine.run(transfer_id)
    routing = store.load(transfer_id).transfer
    (invite,) = gateway.list_invites(routing.interaction_sid, routing.channel_sid)

    engine.taskrouter_event(transfer_id, {"EventType": "reservation.created", "TaskSid": invite.task_sid,
                                          "ReservationSid": "WR" + "7" * 32, "WorkerSid": carol})
    transfer = store.load(transfer_id).transfer
    assert (transfer.new_task_sid, transfer.attempt) == (invite.task_sid, 1)
    assert ("WR" + "7" * 32, carol) in [(e.reservation_sid, e.worker_sid) for e in transfer.timeline
                                        if e.event == "offered"]


def test_events_waiting_in_the_inbox_are_applied_in_order_by_one_run(world, monkeypatch):
    """An offer and its rejection, delivered before the job ran, are applied by that one run in the order they came,
    saved before any action runs, and dropped from the inbox: the re-route follows, and a second run finds nothing."""
    sim, scenario, store, _, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    engine.run(transfer_id)
    task_sid = store.load(transfer_id).transfer.new_task_sid
    offer = {"TaskSid": task_sid, "ReservationSid": "WR" + "1" * 32, "WorkerSid": scenario.agents["carol"]}
    for number, event_type in enumerate(("reservation.created", "reservation.rejected")):
        store.deliver_event(f"EV{number}", [transfer_id], {"source": "taskrouter", "fields": {
            **offer, "EventType": event_type, "Sid": f"EV{number}"}})
    saves = []
    monkeypatch.setattr(store, "save", lambda record, transfer_changed=True: saves.append(record.outbox) or
                        Store.save(store, record, transfer_changed))

    assert engine.inbox(transfer_id).retry_in is None
    transfer = store.load(transfer_id).transfer
    assert [entry.event for entry in transfer.timeline[-3:]] == ["offered", "offer rejected", "re-routing to queue"]
    assert transfer.excluded_workers[-1] == scenario.agents["carol"] and store.take_inbox(transfer_id) == []
    assert [type(action) for action in saves[0]] == [t.Reroute]
    before = store.load(transfer_id)
    assert engine.inbox(transfer_id).retry_in is None and store.load(transfer_id) == before


def test_the_task_read_by_the_web_is_not_read_again(world):
    """A transfer requested with the original task as the web read it is prepared without reading that task."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer = t.Transfer(id=t.new_transfer_id(), from_task_sid=conversation.task_sid,
                          from_worker_sid=conversation.worker_sid, target_type="worker",
                          target_sid=scenario.agents["carol"])
    task = dataclasses.asdict(gateway.fetch_task(conversation.task_sid))
    step = t.start(transfer, time.time(), task=task)
    store.create(Record(step.transfer, step.actions))
    reads_before = len(sim.requests.find("GET", f"/Tasks/{conversation.task_sid}"))

    engine.run(transfer.id)
    assert store.load(transfer.id).transfer.status == t.ROUTING
    assert len(sim.requests.find("GET", f"/Tasks/{conversation.task_sid}")) == reads_before


def test_an_event_that_comes_while_the_job_acts_is_applied_by_the_same_job(world, monkeypatch):
    """TaskRouter answers Baton's re-route with the next offer while the job is still acting on the rejection: the
    offer joins the inbox without a job of its own, and the job applies it before it ends; a job that keeps
    finding new events leaves the last ones to a successor it asks for."""
    sim, scenario, store, gateway, engine = world
    conversation = open_conversation(sim, scenario, "alice")
    transfer_id = request_transfer(store, conversation, scenario.agents["carol"])
    engine.run(transfer_id)
    task_sid = store.load(transfer_id).transfer.new_task_sid
    carol, bob = scenario.agents["carol"], scenario.agents["bob"]
    rejected = {"EventType": "reservation.rejected", "Sid": "EV1", "TaskSid": task_sid,
                "ReservationSid": "WR" + "1" * 32, "WorkerSid": carol}
    assert store.deliver_event("EV1", [transfer_id], {"source": "taskrouter", "fields": rejected}) == [transfer_id]
    next_offer = {"EventType": "reservation.created", "Sid": "EV2", "TaskSid": task_sid,
                  "ReservationSid": "WR" + "2" * 32, "WorkerSid": bob}
    real_update = gateway.update_task_attributes

    def update_then_offer(*args, **kwargs):
        answer = real_update(*args, **kwargs)
        # No job asked for: the one running has the inbox.
        assert store.deliver_event("EV2", [transfer_id], {"source": "taskrouter", "fields": next_offer}) == []
        return answer

    monkeypatch.setattr(gateway, "update_task_attributes", update_then_offer)
    outcome = engine.inbox(transfer_id)
    transfer = store.load(transfer_id).transfer
    assert (outcome.inbox_waiting, transfer.status, transfer.offered_worker_sids) == (False, t.OFFERED, (bob,))
    assert store.take_inbox(transfer_id) == []
    assert store.deliver_event("EV3", [transfer_id], {"source": "taskrouter", "fields": {
        **next_offer, "Sid": "EV3", "EventType": "reservation.accepted"}}) == [transfer_id]

    def one_more_event_each_round(*args, **kwargs):
        store.deliver_event(t.new_transfer_id(), [transfer_id], {"source": "taskrouter", "fields": next_offer})
        return Outcome()

    monkeypatch.setattr(engine, "_locked", one_more_event_each_round)
    assert engine.inbox(transfer_id) == Outcome(inbox_waiting=True)
    assert len(store.take_inbox(transfer_id)) == 1


def offered_to_carol(world):
    """A transfer from Alice to Carol, its new task created: its id, the new task's sid and Carol's worker sid."""
    sim, scenario, store, _, engine = world
    transfer_id = request_transfer(store, open_conversation(sim, scenario, "alice"), scenario.agents["carol"])
    engine.run(transfer_id)
    return transfer_id, store.load(transfer_id).transfer.new_task_sid, scenario.agents["carol"]


def deliver_offer_events(store, transfer_id, task_sid, *events):
    """Deliver TaskRouter reservation events (type, reservation number, worker) to the transfer's inbox."""
    for event_type, number, worker_sid in events:
        sid = f"EV{event_type}{number}"
        store.deliver_event(sid, [transfer_id], {"source": "taskrouter", "fields": {
            "EventType": f"reservation.{event_type}", "Sid": sid, "TaskSid": task_sid,
            "ReservationSid": "WR" + str(number) * 32, "WorkerSid": worker_sid}})


def test_reoffers_declined_again_while_baton_was_behind_cost_one_write(world):
    """The target declined, was re-offered the task and declined again twice before Baton's job ran: one run
    writes the route once (a read and a write) and refuses nothing, every re-offer being over already."""
    sim, scenario, store, _, engine = world
    transfer_id, task_sid, carol = offered_to_carol(world)
    deliver_offer_events(store, transfer_id, task_sid, ("created", 1, carol), ("rejected", 1, carol),
                         *[(event_type, number, carol) for number in (2, 3) for event_type in ("created", "rejected")])
    requests_before = len(sim.requests.find())

    assert engine.inbox(transfer_id).retry_in is None
    made = [(entry.method, entry.path.rsplit("/", 1)[-1]) for entry in sim.requests.find()[requests_before:]]
    assert made == [("GET", task_sid), ("POST", task_sid)]
    transfer = store.load(transfer_id).transfer
    assert (transfer.attempt, transfer.route_version, transfer.excluded_workers[-1]) == (1, 3, carol)


def test_an_action_waiting_for_its_retry_keeps_its_tries_when_later_events_coalesce_the_outbox(world):
    """A re-route that Twilio refused for now stays at the head of the outbox with its tries counted, even when
    a later write would otherwise replace it; the write that follows is carried out after it."""
    _, _, store, gateway, engine = world
    transfer_id, task_sid, carol = offered_to_carol(world)
    gateway.faults["fetch_task"] = [RetryableTwilioError("tasks.fetch", "Too Many Requests", 429, 20429, 1.0)]
    deliver_offer_events(store, transfer_id, task_sid, ("created", 1, carol), ("rejected", 1, carol))
    assert engine.inbox(transfer_id).retry_in == 1.0
    deliver_offer_events(store, transfer_id, task_sid, ("created", 2, carol), ("rejected", 2, carol))
    gateway.faults["fetch_task"] = [RetryableTwilioError("tasks.fetch", "Too Many Requests", 429, 20429, 1.0)]

    assert engine.inbox(transfer_id).retry_in == 1.0
    record = store.load(transfer_id)
    assert [(type(action), action.version) for action in record.outbox] == [(t.Reroute, 1), (t.Reroute, 2)]
    assert record.head_attempts == 2
    assert engine.inbox(transfer_id).retry_in is None
    assert store.load(transfer_id).outbox == ()
