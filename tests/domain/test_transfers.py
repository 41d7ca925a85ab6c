"""The transfer state machine: every state against every event, then the lifecycle's special cases."""

from __future__ import annotations

import dataclasses

import pytest

from baton.domain import transfers as t

SENDER, TARGET, OTHER, THIRD = "WK" + "1" * 32, "WK" + "2" * 32, "WK" + "3" * 32, "WK" + "4" * 32
QUEUE, FALLBACK, WORKFLOW = "WQ" + "1" * 32, "WQ" + "2" * 32, "WW" + "1" * 32
NEW_TASK = "WT" + "9" * 32
SETTINGS = t.Settings()


def requested(target=TARGET, **changes) -> t.Transfer:
    transfer = t.Transfer(id="tr1", from_task_sid="WT" + "0" * 32, from_worker_sid=SENDER,
                          target_type=t.target_type_of(target), target_sid=target)
    return dataclasses.replace(transfer, **changes)


def prepared(**changes) -> t.Prepared:
    values = dict(original_attributes={"conversationSid": "CH1", "flexChannelInviteSid": "KG1", "customer": "c"},
                  original_queue_sid=FALLBACK, task_channel="chat", interaction_sid="KD1", channel_sid="UO1",
                  conversation_sid="CH1", sender_participant_sid="UT1", agents_in_conversation=(SENDER,),
                  sender_conversation_participant_sid="MB-alice", customer_participant_sids=("MB-customer",))
    values.update(changes)
    return t.Prepared(**values)


def run(transfer, *events, settings=SETTINGS):
    """Feed events in order; return the final transfer and the actions of the last step."""
    step = t.Step(transfer)
    for number, event in enumerate(events, start=1):
        step = t.advance(step.transfer, event, settings, now=float(number))
    return step


def in_state(state: str) -> t.Transfer:
    routing = run(requested(), prepared(), t.InviteCreated("KG2", NEW_TASK)).transfer
    return {
        t.REQUESTED: requested(),
        t.ROUTING: routing,
        t.OFFERED: run(routing, t.ReservationCreated("WR1", TARGET)).transfer,
        t.ACCEPTED: run(routing, t.ReservationCreated("WR1", TARGET), t.ReservationAccepted("WR1", TARGET)).transfer,
        t.COMPLETED: run(routing, t.ReservationAccepted("WR1", TARGET), t.SenderClosed()).transfer,
        t.FAILED: run(routing, t.DeadlinePassed()).transfer,
        t.CANCELED: run(routing, t.CancelRequested()).transfer,
    }[state]


EVENTS = {
    "prepared": prepared(),
    "invite": t.InviteCreated("KG3", "WT" + "8" * 32),
    "created": t.ReservationCreated("WR1", TARGET),
    "created-excluded": t.ReservationCreated("WR5", SENDER),
    "accepted": t.ReservationAccepted("WR1", TARGET),
    "rejected": t.ReservationEnded("WR1", TARGET, "rejected"),
    "timeout": t.ReservationEnded("WR1", TARGET, "timeout"),
    "rescinded": t.ReservationEnded("WR1", TARGET, "rescinded"),
    "queued": t.TaskQueueEntered(FALLBACK),
    "workflow-timeout": t.WorkflowTimedOut(),
    "task-ended": t.NewTaskEnded("task.canceled", "Task TTL Exceeded"),
    "sender-closed": t.SenderClosed(),
    "cancel": t.CancelRequested(SENDER),
    "deadline": t.DeadlinePassed(),
    "action-failed": t.ActionFailed("invite", "permanent", 20001),
    "leave": t.LeaveRequested(SENDER),
    "conversation-closed": t.ConversationClosed(),
    "customer-left": t.ParticipantLeft("MB-customer"),
    "sender-left": t.ParticipantLeft("MB-alice"),
}

IGNORED = None
# state -> event -> (next state, action types) or IGNORED (nothing changes, nothing to do)
TABLE = {
    t.REQUESTED: {
        "prepared": (t.ROUTING, [t.CreateInvite]),
        "invite": (t.REQUESTED, []),
        "created": IGNORED,
        "created-excluded": IGNORED,
        "accepted": IGNORED,
        "rejected": IGNORED,
        "timeout": IGNORED,
        "rescinded": IGNORED,
        "queued": IGNORED,
        "workflow-timeout": IGNORED,
        "task-ended": (t.FAILED, []),
        "sender-closed": (t.REQUESTED, []),
        "cancel": (t.CANCELED, []),
        "deadline": (t.FAILED, []),
        "action-failed": (t.FAILED, []),
        "leave": IGNORED,
        "conversation-closed": (t.CANCELED, []),
        "customer-left": IGNORED,
        "sender-left": IGNORED,
    },
    t.ROUTING: {
        "prepared": IGNORED,
        "invite": IGNORED,
        "created": (t.OFFERED, []),
        "created-excluded": (t.ROUTING, [t.RejectReservation, t.Reroute]),
        "accepted": (t.ACCEPTED, [t.CloseSender]),
        "rejected": (t.ROUTING, [t.Reroute]),
        "timeout": (t.ROUTING, [t.Reroute]),
        "rescinded": (t.ROUTING, []),
        "queued": IGNORED,
        "workflow-timeout": (t.ROUTING, [t.Reroute]),
        "task-ended": (t.FAILED, []),
        "sender-closed": (t.ROUTING, []),
        "cancel": (t.CANCELED, [t.CancelNewTask]),
        "deadline": (t.FAILED, [t.CancelNewTask]),
        "action-failed": (t.FAILED, [t.CancelNewTask]),
        "leave": IGNORED,
        "conversation-closed": (t.CANCELED, [t.CancelNewTask]),
        "customer-left": (t.CANCELED, [t.CancelNewTask]),
        "sender-left": (t.ROUTING, []),
    },
    t.OFFERED: {
        "prepared": IGNORED,
        "invite": IGNORED,
        "created": IGNORED,
        "created-excluded": (t.OFFERED, [t.RejectReservation, t.Reroute]),
        "accepted": (t.ACCEPTED, [t.CloseSender]),
        "rejected": (t.ROUTING, [t.Reroute]),
        "timeout": (t.ROUTING, [t.Reroute]),
        "rescinded": (t.ROUTING, []),
        "queued": IGNORED,
        "workflow-timeout": IGNORED,
        "task-ended": (t.FAILED, []),
        "sender-closed": (t.OFFERED, []),
        "cancel": (t.CANCELED, [t.CancelNewTask]),
        "deadline": (t.FAILED, [t.CancelNewTask]),
        "action-failed": (t.FAILED, [t.CancelNewTask]),
        "leave": IGNORED,
        "conversation-closed": (t.CANCELED, [t.CancelNewTask]),
        "customer-left": (t.CANCELED, [t.CancelNewTask]),
        "sender-left": (t.OFFERED, []),
    },
    t.ACCEPTED: {
        "prepared": IGNORED,
        "invite": IGNORED,
        "created": IGNORED,
        "created-excluded": IGNORED,
        "accepted": IGNORED,
        "rejected": IGNORED,
        "timeout": IGNORED,
        "rescinded": IGNORED,
        "queued": IGNORED,
        "workflow-timeout": IGNORED,
        "task-ended": IGNORED,
        "sender-closed": (t.COMPLETED, []),
        "cancel": IGNORED,
        "deadline": IGNORED,
        "action-failed": (t.FAILED, []),
        "leave": IGNORED,
        "conversation-closed": (t.COMPLETED, []),
        "customer-left": IGNORED,
        "sender-left": (t.COMPLETED, []),
    },
    **{final: dict.fromkeys(EVENTS, IGNORED) for final in t.FINAL_STATES},
}


@pytest.mark.parametrize("state", t.STATES)
@pytest.mark.parametrize("event_name", EVENTS)
def test_every_state_and_event(state, event_name):
    """Each state answers each event with the next state and actions of the lifecycle, or ignores it."""
    transfer = in_state(state)
    assert transfer.status == state
    step = t.advance(transfer, EVENTS[event_name], SETTINGS, now=100.0)
    expected = TABLE[state][event_name]
    if expected is IGNORED:
        assert step == t.Step(transfer)
    else:
        next_state, action_types = expected
        assert (step.transfer.status, [type(a) for a in step.actions]) == (next_state, action_types)
        assert step.transfer.timeline[-1].at == 100.0


def test_prepared_builds_the_new_task_attributes():
    """The invite carries the original attributes minus the old invite key, the routing keys and the transfer object."""
    step = run(requested(notes="be kind"), prepared(sender_name="Alice Agent"))
    (invite,) = step.actions
    assert invite.workflow_sid is None
    assert invite.attributes == {
        "conversationSid": "CH1", "customer": "c",
        "transferTargetType": "worker", "transferTargetSid": TARGET, "transferQueueSid": FALLBACK,
        "transferExcludedWorkers": [SENDER],
        "transfer": {"id": "tr1", "mode": "cold", "from_worker_sid": SENDER, "from_worker_name": "Alice Agent",
                     "from_task_sid": "WT" + "0" * 32,
                     "attempt": 0, "route_version": 0, "notes": "be kind", "previous_transfer_id": None,
                     "earlier_transfers": 0, "summary": None, "context": None},
    }


def test_unavailable_target_goes_straight_to_the_queue_route():
    """An agent target who cannot take the task now is skipped: the first route is the fallback queue."""
    step = run(requested(), prepared(target_available=False, fallback_queue_sid=QUEUE))
    assert (step.transfer.route, step.transfer.queue_sid) == ("queue", QUEUE)
    assert step.actions[0].attributes["transferTargetType"] == "queue"
    assert step.transfer.timeline[-1].event == "target unavailable, routing to queue"


def test_queue_and_workflow_targets_route_to_themselves():
    """A queue target routes to that queue; a workflow target's invite names that workflow."""
    queue = run(requested(QUEUE), prepared())
    assert (queue.transfer.route, queue.transfer.queue_sid) == ("queue", QUEUE)
    workflow = run(requested(WORKFLOW), prepared())
    assert (workflow.transfer.route, workflow.actions[0].workflow_sid) == ("workflow", WORKFLOW)


def test_other_agents_in_the_conversation_are_excluded_but_never_the_target():
    """Agents already in the conversation are excluded from routing, except the agent asked for."""
    step = run(requested(), prepared(agents_in_conversation=(SENDER, OTHER, TARGET)))
    assert step.transfer.excluded_workers == (SENDER, OTHER)


def test_rejection_excludes_the_agent_and_reroutes_to_the_queue():
    """A rejected offer excludes the rejecter and switches the route to the queue, with the attempt count."""
    step = run(in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "rejected"))
    (reroute,) = step.actions
    assert reroute == t.Reroute({"transferTargetType": "queue", "transferTargetSid": TARGET,
                                 "transferQueueSid": FALLBACK, "transferExcludedWorkers": [SENDER, TARGET]}, 1, 1)
    assert [e.event for e in step.transfer.timeline[-2:]] == ["offer rejected", "re-routing to queue"]


def test_fails_after_max_attempts_and_cancels_the_new_task():
    """After max_attempts declined offers the transfer fails and the new task is canceled."""
    transfer = in_state(t.ROUTING)
    settings = t.Settings(max_attempts=3)
    for number, worker in enumerate((TARGET, OTHER, THIRD), start=1):
        transfer = run(transfer, t.ReservationCreated(f"WR{number}", worker), settings=settings).transfer
        step = run(transfer, t.ReservationEnded(f"WR{number}", worker, "timeout"), settings=settings)
        transfer = step.transfer
    assert (transfer.status, transfer.attempt) == (t.FAILED, 3)
    assert transfer.failure_reason == "no agent accepted after 3 offers"
    assert step.actions == (t.CancelNewTask("no agent accepted after 3 offers"),)


def test_refused_reoffer_to_an_excluded_agent_is_not_an_attempt_and_writes_the_route_again():
    """Baton refuses a re-offer to an excluded agent without counting it, then writes the route again as a
    new version: TaskRouter kept the task where it was (the first write landed while it was reserved), and
    a write made once the refusal lands finds it pending and re-drives it."""
    first = run(in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "rejected"))
    assert first.actions[-1].version == 1
    step = run(first.transfer, t.ReservationCreated("WR2", TARGET))
    refusal, reroute = step.actions
    assert refusal == t.RejectReservation("WR2")
    assert (reroute.version, reroute.routing["transferTargetType"], reroute.attempt) == (2, "queue", 1)
    after = run(step.transfer, t.ReservationEnded("WR2", TARGET, "rejected"), t.ReservationCreated("WR2", TARGET))
    assert (after.transfer.attempt, after.transfer.status, after.actions) == (1, t.ROUTING, ())


def test_every_refused_reoffer_writes_a_new_route_version():
    """However often TaskRouter offers an excluded agent the task, each refusal is followed by a write that
    is a change (a route version never written before)."""
    transfer = run(in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "rejected")).transfer
    versions = []
    for number in range(2, 6):
        step = run(transfer, t.ReservationCreated(f"WR{number}", TARGET))
        versions.append(step.actions[-1].version)
        transfer = step.transfer
    assert versions == [2, 3, 4, 5]
    assert transfer.attempt == 1


def outbox_after(transfer, *events):
    """Feed events in order, keeping the actions still to carry out as the engine does (coalesced)."""
    outbox: tuple[t.Action, ...] = ()
    for number, event in enumerate(events, start=1):
        step = t.advance(transfer, event, SETTINGS, now=float(number))
        transfer, outbox = step.transfer, t.coalesce(outbox + step.actions, step.transfer)
    return transfer, outbox


def test_reoffers_declined_again_before_baton_acts_cost_one_exclusion_one_refusal_and_one_redrive():
    """Baton fell behind: the agent who declined was re-offered the task and declined again twice before any of
    it reached Baton, and the third re-offer is live. Whatever the number of re-offers, what is left to do is
    the exclusion (written while the live re-offer holds the task), its refusal and the write that re-drives
    the task; the refusals of re-offers already over and the writes overtaken by later ones are left out."""
    transfer, outbox = outbox_after(
        in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "rejected"),
        t.ReservationCreated("WR2", TARGET), t.ReservationEnded("WR2", TARGET, "rejected"),
        t.ReservationCreated("WR3", TARGET), t.ReservationEnded("WR3", TARGET, "rejected"),
        t.ReservationCreated("WR4", TARGET))
    exclusion, refusal, redrive = outbox
    assert refusal == t.RejectReservation("WR4")
    assert (exclusion.routing["transferExcludedWorkers"], exclusion.routing["transferTargetType"]) == (
        [SENDER, TARGET], "queue")
    assert (exclusion.version, redrive.version, transfer.route_version) == (3, 4, 4)
    assert (transfer.attempt, transfer.status) == (1, t.ROUTING)
    ended, left = outbox_after(transfer, t.ReservationEnded("WR4", TARGET, "rejected"))
    assert (left, ended.finished_reservations[-1]) == ((), "WR4")


def test_coalescing_keeps_the_refusal_of_a_live_reoffer_between_its_two_writes():
    """The decline and a live re-offer together: write, refuse, write, as ``_declined`` decides, untouched."""
    step = run(in_state(t.OFFERED), t.ReservationCreated("WR2", TARGET), t.ReservationEnded("WR1", TARGET, "rejected"))
    assert t.coalesce(step.actions, step.transfer) == step.actions
    assert [type(action) for action in step.actions] == [t.Reroute, t.RejectReservation, t.Reroute]


def test_an_offer_to_an_excluded_agent_that_ends_before_baton_hears_of_it_is_refused_and_over():
    transfer, outbox = outbox_after(in_state(t.ROUTING), t.ReservationEnded("WR5", SENDER, "timeout"),
                                    t.ReservationCreated("WR5", SENDER))
    assert (outbox, transfer.attempt) == ((), 0)
    assert "WR5" in transfer.refused_reservations and "WR5" in transfer.finished_reservations


def test_an_excluded_agent_who_accepts_before_the_refusal_lands_has_the_transfer():
    """TaskRouter offered the task to an excluded agent (the sender, back in the fallback queue), who accepted
    before Baton's refusal reached Twilio: the task is theirs, so the transfer is accepted, not left routing."""
    refused = run(in_state(t.ROUTING), t.ReservationCreated("WR5", SENDER))
    assert [type(a) for a in refused.actions] == [t.RejectReservation, t.Reroute]
    step = run(refused.transfer, t.ReservationAccepted("WR5", SENDER))
    assert (step.transfer.status, step.transfer.accepted_worker_sid) == (t.ACCEPTED, SENDER)
    assert [type(a) for a in step.actions] == [t.CloseSender]


def test_reoffer_seen_before_the_rejection_is_refused_and_uncounted_when_the_rejection_arrives():
    """TaskRouter's re-offer to the agent who just declined, seen before the decline: a live offer until the
    decline arrives, then refused and no longer counted. The exclusion is written before the refusal (else
    TaskRouter, finding the task pending with the agent still eligible, offers it to them once more), and the
    route again after it, as a new version, so that a write lands while the task is pending."""
    step = run(in_state(t.OFFERED), t.ReservationCreated("WR2", TARGET))
    assert (step.transfer.status, step.transfer.attempt, step.actions) == (t.OFFERED, 2, ())
    declined = run(step.transfer, t.ReservationEnded("WR1", TARGET, "rejected"))
    assert (declined.transfer.status, declined.transfer.attempt, declined.transfer.live_offers) == (t.ROUTING, 1, ())
    exclusion, refusal, redrive = declined.actions
    assert refusal == t.RejectReservation("WR2")
    assert (exclusion.version, exclusion.routing["transferExcludedWorkers"], exclusion.routing["transferTargetType"]
            ) == (1, [SENDER, TARGET], "queue")
    assert (redrive.version, redrive.routing) == (2, exclusion.routing)
    assert declined.transfer.route_version == 2
    late = run(declined.transfer, t.ReservationEnded("WR2", TARGET, "rejected"))
    assert (late.transfer.status, late.transfer.attempt, late.actions) == (t.ROUTING, 1, ())
    offered = run(late.transfer, t.ReservationCreated("WR3", OTHER))
    assert (offered.transfer.status, offered.transfer.attempt) == (t.OFFERED, 2)


def test_several_live_offers_the_first_acceptance_wins_and_rescinds_are_no_refusals():
    """A queue that reserves several agents at once: each offer is live, a decline by one keeps the others,
    the first acceptance wins, and the others' rescinded offers change nothing after it."""
    transfer = run(in_state(t.ROUTING), t.ReservationCreated("WR1", TARGET), t.ReservationCreated("WR2", OTHER),
                   t.ReservationCreated("WR3", THIRD)).transfer
    assert (transfer.status, transfer.attempt, transfer.offered_worker_sids) == (t.OFFERED, 3, (TARGET, OTHER, THIRD))
    declined = run(transfer, t.ReservationEnded("WR1", TARGET, "rejected"))
    assert (declined.transfer.status, declined.transfer.offered_worker_sids) == (t.OFFERED, (OTHER, THIRD))
    assert TARGET in declined.transfer.excluded_workers
    accepted = run(declined.transfer, t.ReservationAccepted("WR3", THIRD))
    assert (accepted.transfer.status, accepted.transfer.accepted_worker_sid) == (t.ACCEPTED, THIRD)
    assert accepted.actions == (t.CloseSender("closed"),)
    rescinded = run(accepted.transfer, t.ReservationEnded("WR2", OTHER, "rescinded"))
    assert rescinded == t.Step(accepted.transfer)


def test_acceptance_of_an_offer_whose_rescind_arrived_first_still_wins():
    """Events of a multi-reservation out of order: the rescind of one offer, then the acceptance of another."""
    transfer = run(in_state(t.ROUTING), t.ReservationCreated("WR1", TARGET), t.ReservationCreated("WR2", OTHER),
                   t.ReservationEnded("WR1", TARGET, "rescinded")).transfer
    assert (transfer.status, transfer.excluded_workers) == (t.OFFERED, (SENDER,))
    step = run(transfer, t.ReservationAccepted("WR2", OTHER))
    assert (step.transfer.status, step.transfer.accepted_worker_sid) == (t.ACCEPTED, OTHER)


def test_max_attempts_fail_only_once_no_offer_is_live():
    """The last allowed offers declined one by one: the transfer fails when the last live one ends, not before."""
    settings = t.Settings(max_attempts=2)
    transfer = run(in_state(t.ROUTING), t.ReservationCreated("WR1", TARGET), t.ReservationCreated("WR2", OTHER),
                   settings=settings).transfer
    first = run(transfer, t.ReservationEnded("WR1", TARGET, "timeout"), settings=settings)
    assert first.transfer.status == t.OFFERED
    second = run(first.transfer, t.ReservationEnded("WR2", OTHER, "rejected"), settings=settings)
    assert (second.transfer.status, second.actions) == (
        t.FAILED, (t.CancelNewTask("no agent accepted after 2 offers"),))


def test_withdrawn_offers_leave_the_agent_eligible_and_route_nothing():
    """A canceled offer is no refusal: the agent is not excluded and nothing is re-routed."""
    step = run(in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "canceled"))
    assert (step.transfer.status, step.transfer.excluded_workers, step.actions) == (t.ROUTING, (SENDER,), ())


def test_end_before_creation_counts_once():
    """An offer whose end arrives before its creation is counted once, and its late creation is ignored."""
    step = run(in_state(t.ROUTING), t.ReservationEnded("WR1", TARGET, "rejected"), t.ReservationCreated("WR1", TARGET))
    assert (step.transfer.status, step.transfer.attempt, step.actions) == (t.ROUTING, 1, ())
    assert [e.event for e in step.transfer.timeline[-3:]] == ["offered", "offer rejected", "re-routing to queue"]


def test_late_end_of_an_earlier_offer_keeps_the_live_offer():
    """The end of an old offer arriving during a newer one excludes that agent without dropping the live offer."""
    transfer = run(in_state(t.ROUTING), t.ReservationCreated("WR2", OTHER)).transfer
    step = run(transfer, t.ReservationEnded("WR1", TARGET, "rejected"))
    assert (step.transfer.status, step.transfer.live_offers, step.transfer.attempt) == (t.OFFERED, (("WR2", OTHER),), 2)
    assert TARGET in step.transfer.excluded_workers
    assert [type(a) for a in step.actions] == [t.Reroute]


def test_duplicate_events_change_nothing():
    """Every event delivered twice has the effect of one."""
    events = [t.ReservationCreated("WR1", TARGET), t.ReservationEnded("WR1", TARGET, "rejected"),
              t.ReservationCreated("WR2", OTHER), t.ReservationAccepted("WR2", OTHER), t.SenderClosed()]
    once = run(in_state(t.ROUTING), *events).transfer
    twice = in_state(t.ROUTING)
    for number, event in enumerate(events):
        for _ in range(2):
            twice = t.advance(twice, event, SETTINGS, now=float(number + 1)).transfer
    assert twice == once
    assert (once.status, once.attempt, once.accepted_worker_sid) == (t.COMPLETED, 2, OTHER)


def test_accepted_without_seeing_the_offer_still_closes_the_sender():
    """An acceptance that overtakes its offer event is an accepted offer."""
    step = run(in_state(t.ROUTING), t.ReservationAccepted("WR7", OTHER))
    assert (step.transfer.status, step.transfer.attempt, step.actions) == (t.ACCEPTED, 1, (t.CloseSender("closed"),))
    assert [(e.event, e.worker_sid) for e in step.transfer.timeline[-2:]] == [("offered", OTHER), ("accepted", OTHER)]


def test_sender_wrapup_setting_wraps_the_sender_up():
    """With sender_wrapup on, the sender's participant is put in wrap-up instead of closed."""
    step = run(in_state(t.OFFERED), t.ReservationAccepted("WR1", TARGET), settings=t.Settings(sender_wrapup=True))
    assert step.actions == (t.CloseSender("wrapup"),)


def test_warm_transfer_keeps_the_sender_on_acceptance():
    """A warm transfer's acceptance closes nobody."""
    warm = run(requested(mode="warm"), prepared(), t.InviteCreated("KG2", NEW_TASK)).transfer
    step = run(warm, t.ReservationAccepted("WR1", TARGET))
    assert (step.transfer.status, step.actions) == (t.ACCEPTED, ())


def test_queue_transfer_closes_the_sender_on_queue_entry_when_configured():
    """With close_sender_on=queued a queue transfer closes the sender on entering its queue, completes on acceptance."""
    settings = t.Settings(close_sender_on="queued")
    transfer = run(requested(QUEUE), prepared(), t.InviteCreated("KG2", NEW_TASK), settings=settings).transfer
    step = run(transfer, t.TaskQueueEntered(QUEUE), settings=settings)
    assert step.actions == (t.CloseSender("closed"),)
    closed = run(step.transfer, t.SenderClosed(), t.TaskQueueEntered(QUEUE), settings=settings)
    assert closed.actions == ()
    done = run(closed.transfer, t.ReservationAccepted("WR1", OTHER), settings=settings)
    assert (done.transfer.status, done.actions) == (t.COMPLETED, ())


def test_late_workflow_timeout_of_the_agent_step_is_ignored_after_rerouting():
    """The agent step's workflow.timeout arriving after the re-route changes nothing."""
    rerouted = run(in_state(t.OFFERED), t.ReservationEnded("WR1", TARGET, "timeout")).transfer
    assert run(rerouted, t.WorkflowTimedOut()) == t.Step(rerouted)


def test_workflow_timeout_on_the_queue_route_fails_the_transfer():
    """A queue-routed task that times out of its workflow ends the transfer failed, canceling the task."""
    transfer = run(requested(QUEUE), prepared(), t.InviteCreated("KG2", NEW_TASK)).transfer
    step = run(transfer, t.WorkflowTimedOut())
    assert step.transfer.status == t.FAILED
    assert step.actions == (t.CancelNewTask("the new task timed out of its workflow"),)


def test_warm_transfer_completes_when_the_sender_leaves():
    """A warm transfer closes the sender only when asked to leave, then completes."""
    warm = run(requested(mode="warm"), prepared(), t.InviteCreated("KG2", NEW_TASK),
               t.ReservationAccepted("WR1", TARGET)).transfer
    leaving = run(warm, t.LeaveRequested(SENDER))
    assert (leaving.transfer.status, leaving.actions) == (t.ACCEPTED, (t.CloseSender("closed"),))
    assert run(leaving.transfer, t.LeaveRequested(SENDER)) == t.Step(leaving.transfer)
    done = run(leaving.transfer, t.SenderClosed())
    assert done.transfer.status == t.COMPLETED


def test_warm_transfer_completes_when_the_sender_ends_their_own_task():
    """A warm transfer whose sender leaves the conversation by themselves completes without a close."""
    warm = run(requested(mode="warm"), prepared(), t.InviteCreated("KG2", NEW_TASK),
               t.ReservationAccepted("WR1", TARGET)).transfer
    step = run(warm, t.ParticipantLeft("MB-alice"))
    assert (step.transfer.status, step.actions) == (t.COMPLETED, ())
    assert [e.event for e in step.transfer.timeline[-2:]] == ["sender left", "completed"]


def test_an_earlier_participant_of_the_sender_leaving_is_not_the_sender_leaving():
    """The sender left this conversation once before and came back (a transfer back to them): the removal
    of their earlier participant, replayed or late, is about nobody in this transfer."""
    warm = run(requested(mode="warm"), prepared(), t.InviteCreated("KG2", NEW_TASK),
               t.ReservationAccepted("WR1", TARGET)).transfer
    step = run(warm, t.ParticipantLeft("MB-alice-before"))
    assert step == t.Step(warm)


def test_an_sms_customer_leaving_cancels():
    """An SMS customer (a participant with an address, no identity) leaving a pending transfer cancels it."""
    transfer = run(requested(), prepared(customer_participant_sids=("MB-sms",)), t.InviteCreated("KG2", NEW_TASK))
    step = run(transfer.transfer, t.ParticipantLeft("MB-sms"))
    assert (step.transfer.status, step.actions) == (t.CANCELED, (t.CancelNewTask("customer left"),))


def test_workflow_route_counts_offers_without_rerouting():
    """A workflow target's rejections are left to that workflow; Baton counts them."""
    transfer = run(requested(WORKFLOW), prepared(), t.InviteCreated("KG2", NEW_TASK)).transfer
    step = run(transfer, t.ReservationCreated("WR1", OTHER), t.ReservationEnded("WR1", OTHER, "rejected"))
    assert (step.transfer.status, step.transfer.attempt, step.actions) == (t.ROUTING, 1, ())


def test_failure_after_acceptance_never_cancels_the_accepted_task():
    """A permanent error after acceptance fails the transfer but leaves the new agent's task alone."""
    step = run(in_state(t.ACCEPTED), t.ActionFailed("close sender", "gone", 20404))
    assert (step.transfer.status, step.transfer.failure_code, step.actions) == (t.FAILED, 20404, ())


def test_record_round_trips_through_a_dict():
    """A transfer survives to_dict/from_dict unchanged (the store keeps it as JSON)."""
    import json

    transfer = in_state(t.OFFERED)
    assert t.Transfer.from_dict(json.loads(json.dumps(transfer.to_dict()))) == transfer
