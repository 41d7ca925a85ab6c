"""The engine's catch-up path, in process: ``reconcile`` asking Twilio what became of a transfer whose
events were missed, the re-route of a task that has moved on, and Twilio's "already done" answers.

No webhook reaches the engine here (the simulator sends them nowhere): every event a test does not
hand over itself is missed, as when a worker was down or Twilio gave up delivering.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from test_engine import FaultyGateway, request_transfer, world  # noqa: F401  (world: the fixture)

from baton.domain import transfers as t
from baton.domain.attributes import ATTRIBUTES_LIMIT, stored_length
from baton.domain.settings import Settings
from baton.infrastructure.engine import TransferEngine
from baton.infrastructure.twilio_gateway import PermanentTwilioError, RetryableTwilioError, build_twilio_client
from simulator.scenario import open_conversation

IGNORE_EVERY_OFFER = [{"action": "ignore"}]


class AnswerScriptedGateway(FaultyGateway):
    """The faulty gateway, whose reservation answers, task cancels and reservation lists can fail too."""

    def update_reservation(self, *args, **kwargs):
        self._fault("update_reservation")
        return super().update_reservation(*args, **kwargs)

    def cancel_task(self, *args, **kwargs):
        self._fault("cancel_task")
        return super().cancel_task(*args, **kwargs)

    def list_reservations(self, *args, **kwargs):
        self._fault("list_reservations")
        return super().list_reservations(*args, **kwargs)


@pytest.fixture
def catchup(world):  # noqa: F811  (the fixture imported above)
    """The engine world, with a gateway whose every answer the catch-up path reads can be scripted to fail."""
    sim, scenario, store, _, engine = world
    gateway = AnswerScriptedGateway(build_twilio_client(engine.config), scenario.workspace_sid)
    return sim, scenario, store, gateway, TransferEngine(store, gateway, engine.config)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0):
    """Poll ``condition`` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)
    return value


def routed_transfer(sim, scenario, store, engine, to: str) -> t.Transfer:
    """A transfer of a new conversation of Alice's to ``to``, its invite created: the new task is routing."""
    transfer_id = request_transfer(store, open_conversation(sim, scenario, "alice"), to)
    engine.run(transfer_id)
    transfer = store.load(transfer_id).transfer
    assert (transfer.status, transfer.new_task_sid is not None) == (t.ROUTING, True)
    return transfer


def reservations_of(sim, task_sid: str, worker_sid: str, status: str) -> list:
    return [reservation for reservation in sim.taskrouter.task(task_sid).reservations
            if reservation.worker.sid == worker_sid and reservation.status == status]


def timeline_of(transfer: t.Transfer) -> list[tuple[str, str | None]]:
    return [(entry.event, entry.worker_sid) for entry in transfer.timeline]


def test_a_missed_timed_out_offer_is_replayed_the_agent_excluded_and_the_task_rerouted(catchup):
    """Bob let his offer time out and Baton never heard: reconciling replays the offer and its timeout, so Bob is
    excluded and the new task is re-routed to the queue without him."""
    sim, scenario, store, _, engine = catchup
    bob, carol = scenario.agents["bob"], scenario.agents["carol"]
    for agent in (bob, carol):  # nobody accepts, so the task stays routable for the re-route
        sim.agents.set_policy(agent, IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, bob)
    (timed_out,) = wait_until(lambda: reservations_of(sim, transfer.new_task_sid, bob, "timeout"),
                              "Bob's offer timed out")

    assert engine.reconcile(transfer.id).retry_in is None

    record = store.load(transfer.id)
    caught_up = record.transfer
    assert record.outbox == ()
    assert ("offer timeout", bob) in timeline_of(caught_up)
    assert timed_out.sid in caught_up.finished_reservations
    assert bob in caught_up.excluded_workers
    assert caught_up.status in (t.ROUTING, t.OFFERED)
    attributes = sim.taskrouter.task(transfer.new_task_sid).attributes
    assert attributes["transferTargetType"] == "queue"
    assert bob in attributes["transferExcludedWorkers"]
    assert attributes["transfer"]["route_version"] >= 1


def test_a_missed_acceptance_is_replayed_and_the_transfer_completes(catchup):
    """Carol accepted and Baton never heard: reconciling replays her acceptance and closes the sender."""
    sim, scenario, store, _, engine = catchup
    carol = scenario.agents["carol"]
    transfer = routed_transfer(sim, scenario, store, engine, carol)
    (accepted,) = wait_until(lambda: reservations_of(sim, transfer.new_task_sid, carol, "accepted"),
                             "Carol accepted")

    engine.reconcile(transfer.id)

    record = store.load(transfer.id)
    assert record.outbox == ()
    assert (record.transfer.status, record.transfer.accepted_worker_sid) == (t.COMPLETED, carol)
    assert record.transfer.accepted_reservation_sid == accepted.sid
    assert ("accepted", carol) in timeline_of(record.transfer)
    assert sim.requests.find("POST", f"/Participants/{record.transfer.sender_participant_sid}")


def test_a_missed_cancel_of_the_new_task_fails_the_transfer(catchup):
    """Someone canceled the new task in Twilio and Baton never heard: reconciling ends the transfer failed."""
    sim, scenario, store, _, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    sim.taskrouter.cancel_task(scenario.workspace_sid, transfer.new_task_sid, "canceled by a supervisor")

    engine.reconcile(transfer.id)

    record = store.load(transfer.id)
    assert (record.transfer.status, record.transfer.failure_reason, record.outbox) == (t.FAILED, "task.canceled", ())


def test_a_new_task_that_no_longer_exists_fails_the_transfer(catchup):
    """A new task Twilio answers 404 for (deleted, or expired) ends the transfer failed when reconciled."""
    sim, scenario, store, _, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    sim.taskrouter.delete_task(scenario.workspace_sid, transfer.new_task_sid)

    engine.reconcile(transfer.id)

    failed = store.load(transfer.id).transfer
    assert (failed.status, failed.failure_reason) == (t.FAILED, "task.deleted: the task no longer exists")


def test_reconcile_fails_a_transfer_past_its_deadline_and_cancels_its_new_task(catchup):
    """A transfer still unanswered after the transfer timeout (its deadline missed) fails when reconciled, and its
    new task is canceled so that no agent gets it afterwards."""
    sim, scenario, store, gateway, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    timeout_s = Settings().transfer_timeout_s
    later = TransferEngine(store, gateway, engine.config, clock=lambda: time.time() + timeout_s + 1)

    later.reconcile(transfer.id)

    record = store.load(transfer.id)
    assert (record.transfer.status, record.outbox) == (t.FAILED, ())
    assert record.transfer.timeline[-1].event == "transfer timeout"
    assert record.transfer.failure_reason == f"not accepted within {timeout_s} s"
    assert sim.taskrouter.task(transfer.new_task_sid).assignment_status == "canceled"


def test_reconcile_within_the_deadline_and_nothing_missed_changes_nothing(catchup):
    """A transfer whose offer is still pending, reconciled before its deadline, stays as it was, with the offer
    now known."""
    sim, scenario, store, _, engine = catchup
    bob = scenario.agents["bob"]
    sim.agents.set_policy(bob, IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, bob)
    (pending,) = wait_until(lambda: reservations_of(sim, transfer.new_task_sid, bob, "pending"), "Bob is offered")

    engine.reconcile(transfer.id)

    offered = store.load(transfer.id).transfer
    assert (offered.status, offered.live_offers, offered.excluded_workers) == (
        t.OFFERED, ((pending.sid, bob),), (scenario.agents["alice"],))


def test_reconcile_when_twilio_fails_leaves_the_transfer_for_the_next_round(catchup):
    """Twilio failing while reconciling is no verdict: the transfer is left as it was, for the next round."""
    sim, scenario, store, gateway, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    before = store.load(transfer.id)
    gateway.faults["list_reservations"] = [RetryableTwilioError("reservations.list", "Service Unavailable", 503)]

    assert engine.reconcile(transfer.id).retry_in is None
    assert store.load(transfer.id) == before


def test_reconcile_finishes_the_outbox_a_dead_worker_left(catchup):
    """A record saved with actions still to do (its worker died) is carried on by reconciling, not re-asked."""
    sim, scenario, store, _, engine = catchup
    transfer_id = request_transfer(store, open_conversation(sim, scenario, "alice"), scenario.agents["carol"])

    engine.reconcile(transfer_id)

    record = store.load(transfer_id)
    assert (record.transfer.status, record.outbox) == (t.ROUTING, ())
    assert record.transfer.new_task_sid is not None


def test_reroute_leaves_a_task_that_is_no_longer_pending_alone(catchup):
    """Bob's rejection arrives after the new task was canceled: the re-route it asks for reads the task, finds it
    no longer routable and writes nothing (TaskRouter would refuse the write, failing the transfer)."""
    sim, scenario, store, _, engine = catchup
    bob = scenario.agents["bob"]
    sim.agents.set_policy(bob, IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, bob)
    (offer,) = wait_until(lambda: reservations_of(sim, transfer.new_task_sid, bob, "pending"), "Bob is offered")
    sim.taskrouter.cancel_task(scenario.workspace_sid, transfer.new_task_sid, "canceled by a supervisor")

    engine.taskrouter_event(transfer.id, {"EventType": "reservation.rejected", "TaskSid": transfer.new_task_sid,
                                          "ReservationSid": offer.sid, "WorkerSid": bob})

    record = store.load(transfer.id)
    assert record.outbox == ()
    assert (record.transfer.status, bob in record.transfer.excluded_workers) == (t.ROUTING, True)
    assert record.transfer.route_version == 1
    assert not sim.requests.find("POST", f"/Tasks/{transfer.new_task_sid}")
    assert "transferExcludedWorkers" in sim.taskrouter.task(transfer.new_task_sid).attributes
    assert bob not in sim.taskrouter.task(transfer.new_task_sid).attributes["transferExcludedWorkers"]


def test_a_reroute_whose_routing_keys_no_longer_fit_fails_and_the_sender_keeps_the_customer(catchup):
    """The customer's own attributes leave no room for one more excluded agent: Bob's rejection cannot be written
    into the task, so the transfer fails, its task is canceled, and Alice, never closed, keeps the chat."""
    sim, scenario, store, _, engine = catchup
    bob = scenario.agents["bob"]
    sim.agents.set_policy(bob, IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, bob)
    (offer,) = wait_until(lambda: reservations_of(sim, transfer.new_task_sid, bob, "pending"), "Bob is offered")
    attributes = sim.taskrouter.task(transfer.new_task_sid).attributes
    bare = {**attributes, "transfer": {**attributes["transfer"], "context": None, "summary": None, "notes": None},
            "crmProfile": ""}
    bare["crmProfile"] = "x" * (ATTRIBUTES_LIMIT - 20 - stored_length(bare))
    sim.taskrouter.update_task(scenario.workspace_sid, transfer.new_task_sid, attributes=bare)

    engine.taskrouter_event(transfer.id, {"EventType": "reservation.rejected", "TaskSid": transfer.new_task_sid,
                                          "ReservationSid": offer.sid, "WorkerSid": bob})

    failed = store.load(transfer.id).transfer
    assert (failed.status, failed.failure_reason.startswith("the original task's attributes and the routing keys "
                                                            "take ")) == (t.FAILED, True)
    assert sim.taskrouter.task(transfer.new_task_sid).assignment_status == "canceled"
    assert sim.taskrouter.task(transfer.from_task_sid).assignment_status == "assigned"


ALREADY_DONE = [(400, 20001, "Reservation is not pending"), (404, 20404, "The requested resource was not found"),
                (409, 20409, "Conflict")]


@pytest.mark.parametrize(("status", "code", "message"), ALREADY_DONE, ids=[str(s) for s, _, _ in ALREADY_DONE])
def test_a_refusal_answered_already_done_counts_as_done(catchup, status, code, message):
    """An offer to an excluded agent (Alice, the sender) is refused; Twilio answering that refusal 400, 404 or 409
    (the offer already ended or is gone) is success: the transfer routes on, not failed."""
    sim, scenario, store, gateway, engine = catchup
    alice = scenario.agents["alice"]
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    gateway.faults["update_reservation"] = [PermanentTwilioError("reservations.update", message, status, code)]
    stale_offer = "WR" + "5" * 32

    engine.taskrouter_event(transfer.id, {"EventType": "reservation.created", "TaskSid": transfer.new_task_sid,
                                          "ReservationSid": stale_offer, "WorkerSid": alice})

    record = store.load(transfer.id)
    assert gateway.faults["update_reservation"] == []
    assert record.outbox == ()
    assert record.transfer.status in (t.ROUTING, t.OFFERED)
    assert record.transfer.failure_reason is None
    assert stale_offer in record.transfer.refused_reservations


def test_a_refusal_that_twilio_refuses_otherwise_fails_the_transfer(catchup):
    """The counterpart: a 403 on refusing an offer is not "already done", and fails the transfer with its code."""
    sim, scenario, store, gateway, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    gateway.faults["update_reservation"] = [PermanentTwilioError("reservations.update", "Forbidden", 403, 20403)]

    engine.taskrouter_event(transfer.id, {"EventType": "reservation.created", "TaskSid": transfer.new_task_sid,
                                          "ReservationSid": "WR" + "5" * 32, "WorkerSid": scenario.agents["alice"]})

    failed = store.load(transfer.id).transfer
    assert (failed.status, failed.failure_code) == (t.FAILED, 20403)


@pytest.mark.parametrize(("status", "code", "message"), ALREADY_DONE, ids=[str(s) for s, _, _ in ALREADY_DONE])
def test_a_cancel_answered_already_done_counts_as_done(catchup, caplog, status, code, message):
    """Canceling the new task when Twilio answers 400, 404 or 409 (already canceled, gone, or moved on) is success:
    the transfer is canceled and its outbox empty, with the answer logged as already done."""
    sim, scenario, store, gateway, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    gateway.faults["cancel_task"] = [PermanentTwilioError("tasks.cancel", message, status, code)]

    with caplog.at_level("INFO", logger="baton.infrastructure.engine"):
        engine.cancel(transfer.id, scenario.agents["alice"])

    record = store.load(transfer.id)
    assert gateway.faults["cancel_task"] == []
    assert (record.transfer.status, record.outbox) == (t.CANCELED, ())
    assert f"tasks.cancel: already done or gone ({status} {code})" in caplog.messages


def test_canceling_a_new_task_twilio_no_longer_has_counts_as_done(catchup, caplog):
    """The simulator's own 404 for a deleted task: the transfer's cancel is done, nothing left in its outbox."""
    sim, scenario, store, _, engine = catchup
    sim.agents.set_policy(scenario.agents["bob"], IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, scenario.agents["bob"])
    sim.taskrouter.delete_task(scenario.workspace_sid, transfer.new_task_sid)

    with caplog.at_level("INFO", logger="baton.infrastructure.engine"):
        engine.cancel(transfer.id, scenario.agents["alice"])

    record = store.load(transfer.id)
    assert (record.transfer.status, record.outbox) == (t.CANCELED, ())
    assert any(message.startswith("tasks.cancel: already done or gone (404 20404)") for message in caplog.messages)


def test_a_replayed_offer_already_known_is_not_counted_twice(catchup):
    """Reconciling twice replays the same offers twice; each is counted once."""
    sim, scenario, store, _, engine = catchup
    bob = scenario.agents["bob"]
    sim.agents.set_policy(bob, IGNORE_EVERY_OFFER)
    transfer = routed_transfer(sim, scenario, store, engine, bob)
    wait_until(lambda: reservations_of(sim, transfer.new_task_sid, bob, "pending"), "Bob is offered")

    engine.reconcile(transfer.id)
    once = store.load(transfer.id)
    engine.reconcile(transfer.id)

    assert store.load(transfer.id) == once
    assert once.transfer.attempt == 1
