"""The agent API: starting, reading and canceling transfers, with every refusal and what it leaves behind."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from support.edge import ADMIN_TOKEN, bearer

from baton.domain import transfers as t
from baton.infrastructure.store import Record
from workers.celery_app import CANCEL_TRANSFER, RUN_TRANSFER


@pytest.fixture
def alice(scenario):
    return bearer(scenario.tokens["alice"])


@pytest.fixture
def request_body(scenario):
    """Alice's request to transfer her conversation to Carol."""
    return {"task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"]}


@pytest.fixture
def nothing_recorded(store, jobs):
    """A check that no transfer was stored and no job enqueued."""
    def check() -> None:
        assert store.redis.keys("baton:transfer:*") == []
        assert jobs() == []
    return check


def change_settings(client, **changes):
    response = client.patch("/v1/settings", json=changes, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200, response.get_json()


def error_of(response) -> dict:
    return response.get_json()["error"]


def test_post_records_the_transfer_with_its_deadline_and_enqueues_its_run(client, alice, request_body, scenario, sim,
                                                                         store, jobs, config):
    """A transfer request is answered 202 with the transfer, stored as requested with a Prepare outbox and its
    deadline (transfer_timeout_s after its creation), and enqueued."""
    response = client.post("/v1/transfers", json={**request_body, "notes": "VIP, refund approved"}, headers=alice)

    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/transfers/{body['id']}"
    assert body["status"] == "requested" and body["mode"] == "cold"
    assert (body["task_sid"], body["to"]) == (request_body["task_sid"], request_body["to"])
    assert body["target_type"] == "worker"
    assert body["from_worker_sid"] == scenario.agents["alice"]
    assert body["notes"] == "VIP, refund approved" and body["summary_requested"] is False
    assert body["failure"] is None and body["created_at"].endswith("Z")
    assert body["timeline"] == [{"at": body["created_at"], "state": "requested", "event": "requested"}]

    record = store.load(body["id"])
    (prepare,) = record.outbox
    task = sim.taskrouter.task(request_body["task_sid"])
    # The task as read to authorize the sender, handed to the worker so that it does not read it again.
    assert record.transfer.status == t.REQUESTED and isinstance(prepare, t.Prepare)
    assert (prepare.task["sid"], prepare.task["attributes"], prepare.task["assignment_status"]) == (
        task.sid, task.attributes, "assigned")
    [run] = jobs()
    assert (run.name, run.args, run.eta) == (RUN_TRANSFER, [body["id"]], None)
    timeout = store.settings(config.settings).transfer_timeout_s
    assert store.redis.zscore("baton:deadlines", body["id"]) == record.transfer.created_at + timeout


def test_sids_are_accepted_in_either_case_and_answered_in_twilio_lowercase(client, alice, request_body):
    """Upper-case hex digits in the sids are accepted and normalized to Twilio's lower case."""
    upper = {key: value[:2] + value[2:].upper() for key, value in request_body.items()}
    response = client.post("/v1/transfers", json=upper, headers=alice)
    assert response.status_code == 202
    assert (response.get_json()["task_sid"], response.get_json()["to"]) == (request_body["task_sid"],
                                                                             request_body["to"])


@pytest.mark.parametrize("headers, code", [
    ({}, "missing_token"),
    ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "missing_token"),
    ({"Authorization": "Bearer"}, "missing_token"),
    (bearer("not-a-flex-token"), "invalid_token"),
])
def test_a_caller_without_a_valid_token_is_refused(client, request_body, nothing_recorded, headers, code):
    """No token, another scheme, or a token IAM refuses is a 401 with its code."""
    response = client.post("/v1/transfers", json=request_body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == code
    nothing_recorded()


@pytest.mark.parametrize("change, field", [
    ({"task_sid": None}, "task_sid"),
    ({"task_sid": "WT123"}, "task_sid"),
    ({"task_sid": "WK" + "a" * 32}, "task_sid"),
    ({"to": "WT" + "a" * 32}, "to"),
    ({"to": None}, "to"),
    ({"mode": "lukewarm"}, "mode"),
    ({"notes": "n" * 1001}, "notes"),
    ({"notes": 42}, "notes"),
    ({"summary": "yes"}, "summary"),
    ({"colour": "blue"}, "colour"),
])
def test_a_bad_body_field_is_refused_naming_the_field(client, alice, request_body, nothing_recorded, change, field):
    """Each invalid, missing or unknown field is a 400 invalid_request naming that field."""
    body = {key: value for key, value in {**request_body, **change}.items() if value is not None}
    response = client.post("/v1/transfers", json=body, headers=alice)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert error["message"].startswith(f"{field}: ")
    nothing_recorded()


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"', ""])
def test_a_body_that_is_not_a_json_object_is_refused(client, alice, nothing_recorded, data):
    """A body that is not a JSON object is a 400 invalid_json."""
    response = client.post("/v1/transfers", data=data, content_type="application/json", headers=alice)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"
    nothing_recorded()


def test_an_overlong_idempotency_key_is_refused(client, alice, request_body, nothing_recorded):
    """An Idempotency-Key longer than 200 characters is a 400 naming the header."""
    response = client.post("/v1/transfers", json=request_body, headers={**alice, "Idempotency-Key": "k" * 201})
    assert response.status_code == 400 and error_of(response)["field"] == "Idempotency-Key"
    nothing_recorded()


def test_transfers_turned_off_are_refused(client, alice, request_body, nothing_recorded):
    """With transfers turned off by an administrator, a request is a 422 transfers_disabled."""
    change_settings(client, transfers_enabled=False)
    response = client.post("/v1/transfers", json=request_body, headers=alice)
    assert response.status_code == 422 and error_of(response)["code"] == "transfers_disabled"
    nothing_recorded()


def test_notes_are_refused_when_notes_are_turned_off(client, alice, request_body, nothing_recorded):
    """With notes turned off, a request with notes is a 422 notes_disabled on the notes field that says so."""
    change_settings(client, notes_enabled=False)
    response = client.post("/v1/transfers", json={**request_body, "notes": "call back at 5"}, headers=alice)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("notes_disabled", "notes") and "turned off" in error["message"]
    nothing_recorded()


def test_empty_notes_pass_when_notes_are_turned_off(client, alice, request_body):
    """With notes turned off, empty notes are no notes: the transfer is accepted without them."""
    change_settings(client, notes_enabled=False)
    response = client.post("/v1/transfers", json={**request_body, "notes": ""}, headers=alice)
    assert response.status_code == 202 and response.get_json()["notes"] is None


def test_notes_are_redacted_before_they_are_kept(client, alice, request_body, store):
    """Card numbers and security codes in notes are redacted before the record keeps them."""
    notes = "card 4111 1111 1111 1111 cvv 123, order 4417"
    response = client.post("/v1/transfers", json={**request_body, "notes": notes}, headers=alice)
    assert response.get_json()["notes"] == "card [redacted] cvv [redacted], order 4417"
    assert "4111" not in store.redis.get(f"baton:transfer:{response.get_json()['id']}")


def test_a_summary_is_refused_when_summaries_are_turned_off(client, alice, request_body, nothing_recorded):
    """Summaries are off by default, so asking for one is a 422 summary_disabled on the summary field."""
    response = client.post("/v1/transfers", json={**request_body, "summary": True}, headers=alice)
    assert response.status_code == 422
    assert (error_of(response)["code"], error_of(response)["field"]) == ("summary_disabled", "summary")
    nothing_recorded()


def test_a_summary_is_recorded_when_summaries_are_on(client, alice, request_body):
    """With summaries turned on, the request's summary choice is recorded on the transfer."""
    change_settings(client, summary_enabled=True)
    response = client.post("/v1/transfers", json={**request_body, "summary": True, "mode": "warm"}, headers=alice)
    assert response.status_code == 202
    assert (response.get_json()["summary_requested"], response.get_json()["mode"]) == (True, "warm")


def test_an_unknown_task_is_not_found(client, alice, scenario, nothing_recorded):
    """A task Twilio does not know is a 404 task_not_found."""
    body = {"task_sid": "WT" + secrets.token_hex(16), "to": scenario.queues["support"]}
    response = client.post("/v1/transfers", json=body, headers=alice)
    assert response.status_code == 404 and error_of(response)["code"] == "task_not_found"
    nothing_recorded()


def test_an_agent_cannot_transfer_another_agents_task(client, scenario, request_body, nothing_recorded):
    """Bob, who holds no reservation of Alice's task, gets a 403 not_your_task."""
    response = client.post("/v1/transfers", json=request_body, headers=bearer(scenario.tokens["bob"]))
    assert response.status_code == 403 and error_of(response)["code"] == "not_your_task"
    nothing_recorded()


def test_an_agent_cannot_transfer_to_themselves(client, alice, scenario, nothing_recorded):
    """Naming the holding agent as the target is a 400 on the to field."""
    body = {"task_sid": scenario.conversation.task_sid, "to": scenario.agents["alice"]}
    response = client.post("/v1/transfers", json=body, headers=alice)
    assert response.status_code == 400 and error_of(response)["field"] == "to"
    nothing_recorded()


def test_a_supervisor_transfers_for_the_agent_holding_the_task(client, scenario, request_body):
    """Erin, a supervisor, may transfer Alice's task, and the transfer is sent from Alice."""
    response = client.post("/v1/transfers", json=request_body, headers=bearer(scenario.tokens["erin"]))
    assert response.status_code == 202
    assert response.get_json()["from_worker_sid"] == scenario.agents["alice"]


def test_a_supervisor_cannot_transfer_a_task_nobody_holds(client, sim, scenario, nothing_recorded):
    """A pending task that no agent holds is a 409 task_not_assigned, even for a supervisor."""
    offline = {"preferredWorkerSid": scenario.agents["dave"]}
    task = sim.taskrouter.create_task(scenario.workspace_sid, attributes=offline,
                                      workflow_sid=scenario.inbound_workflow_sid, task_channel="chat")
    body = {"task_sid": task.sid, "to": scenario.queues["support"]}
    response = client.post("/v1/transfers", json=body, headers=bearer(scenario.tokens["erin"]))
    assert response.status_code == 409 and error_of(response)["code"] == "task_not_assigned"
    nothing_recorded()


def test_a_second_transfer_of_a_task_conflicts(client, alice, request_body, scenario, jobs):
    """While a task has a transfer in progress, another is a 409 transfer_in_progress naming the first."""
    first = client.post("/v1/transfers", json=request_body, headers=alice).get_json()
    response = client.post("/v1/transfers", json={**request_body, "to": scenario.queues["billing"]}, headers=alice)
    assert response.status_code == 409
    assert error_of(response)["code"] == "transfer_in_progress" and first["id"] in error_of(response)["message"]
    assert [job.args for job in jobs()] == [[first["id"]]]


def test_a_retried_request_with_its_idempotency_key_gets_the_same_transfer(client, alice, request_body, store, jobs):
    """The same Idempotency-Key returns the first transfer; one not yet started is enqueued to run again."""
    headers = {**alice, "Idempotency-Key": "retry-me-1"}
    first = client.post("/v1/transfers", json=request_body, headers=headers)
    again = client.post("/v1/transfers", json=request_body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert [job.name for job in jobs()] == [RUN_TRANSFER, RUN_TRANSFER]
    assert len(store.redis.keys("baton:transfer:*")) == 1


@pytest.mark.parametrize("change", [{"notes": "Refund approved"}, {"mode": "warm"}, {"summary": True},
                                    {"to": "bob"}], ids=["notes", "mode", "summary", "target"])
def test_an_idempotency_key_sent_with_another_request_is_refused(client, alice, request_body, scenario, store, jobs,
                                                                 change):
    """The key of a first request, sent with a request that asks something else, is a 422 idempotency_key_reused
    naming the header and the first transfer, not that transfer passed off as the answer; the same request with its
    key, written otherwise (sids in upper case, fields in another order), still gets the first transfer."""
    change_settings(client, summary_enabled=True)
    headers = {**alice, "Idempotency-Key": "retry-me-2"}
    first = client.post("/v1/transfers", json=request_body, headers=headers).get_json()
    other = {**request_body, **change}
    if "to" in change:
        other["to"] = scenario.agents[change["to"]]

    reused = client.post("/v1/transfers", json=other, headers=headers)

    assert reused.status_code == 422
    error = error_of(reused)
    assert (error["code"], error["field"]) == ("idempotency_key_reused", "Idempotency-Key")
    assert first["id"] in error["message"]
    assert len(store.redis.keys("baton:transfer:*")) == 1 and [job.args for job in jobs()] == [[first["id"]]]
    same = {"to": request_body["to"].upper(), "task_sid": request_body["task_sid"].upper()}
    again = client.post("/v1/transfers", json=same, headers=headers)
    assert again.status_code == 202 and again.get_json()["id"] == first["id"]


def test_a_key_stored_before_requests_were_hashed_still_replays(client, alice, request_body, store):
    """An Idempotency-Key recorded by the previous version (the transfer's id alone, kept a day) answers as a replay."""
    headers = {**alice, "Idempotency-Key": "retry-me-3"}
    first = client.post("/v1/transfers", json=request_body, headers=headers).get_json()
    [key] = store.redis.keys("baton:idempotency:*")
    store.redis.set(key, first["id"], keepttl=True)
    again = client.post("/v1/transfers", json={**request_body, "notes": "other"}, headers=headers)
    assert again.status_code == 202 and again.get_json()["id"] == first["id"]


# Reading


@pytest.fixture
def created(client, alice, request_body):
    """Alice's transfer to Carol, as the API answered it."""
    return client.post("/v1/transfers", json=request_body, headers=alice).get_json()


def replace(store, transfer_id, **changes):
    record = store.load(transfer_id)
    store.save(Record(dataclasses.replace(record.transfer, **changes), record.outbox))


def test_the_sender_reads_a_transfer(client, alice, created):
    """The sender gets the transfer by its id, as it was answered on creation, with the names looked up since
    (the creation's answer names only those already known)."""
    response = client.get(f"/v1/transfers/{created['id']}", headers=alice)
    assert response.status_code == 200 and {**response.get_json(), "names": {}} == {**created, "names": {}}
    assert response.get_json()["names"].keys() == {created["from_worker_sid"], created["to"]}


@pytest.mark.parametrize("reader, allowed", [("bob", False), ("carol", False), ("erin", True)])
def test_only_the_transfers_agents_and_supervisors_read_it(client, scenario, created, reader, allowed):
    """Another agent gets a 403 not_your_transfer (the target too, until offered it); a supervisor reads it."""
    response = client.get(f"/v1/transfers/{created['id']}", headers=bearer(scenario.tokens[reader]))
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403 and error_of(response)["code"] == "not_your_transfer"


def test_the_agent_offered_a_transfer_reads_it(client, scenario, store, created):
    """Once Carol is offered the transfer, she may read it, with the timeline's details."""
    carol = scenario.agents["carol"]
    entry = t.TimelineEntry(at=2.0, state=t.OFFERED, event="reservation.created", worker_sid=carol,
                            reservation_sid="WR" + "1" * 32)
    replace(store, created["id"], status=t.OFFERED, live_offers=(("WR" + "1" * 32, carol),),
            timeline=store.load(created["id"]).transfer.timeline + (entry,))
    response = client.get(f"/v1/transfers/{created['id']}", headers=bearer(scenario.tokens["carol"]))
    assert response.status_code == 200
    assert response.get_json()["timeline"][-1] == {"at": "1970-01-01T00:00:02.000Z", "state": "offered",
                                                   "event": "reservation.created", "worker_sid": carol,
                                                   "reservation_sid": "WR" + "1" * 32}


def test_a_failed_transfer_shows_its_failure(client, alice, store, created):
    """A failed transfer is answered with its failure's reason and Twilio code."""
    replace(store, created["id"], status=t.FAILED, failure_reason="invites.create: refused", failure_code=20001)
    body = client.get(f"/v1/transfers/{created['id']}", headers=alice).get_json()
    assert body["failure"] == {"reason": "invites.create: refused", "code": 20001}


def test_an_unknown_transfer_is_not_found(client, alice):
    """An id that names no transfer is a 404 transfer_not_found."""
    response = client.get("/v1/transfers/tr_" + "0" * 32, headers=alice)
    assert response.status_code == 404 and error_of(response)["code"] == "transfer_not_found"


@pytest.mark.parametrize("reader, count", [("alice", 1), ("bob", 0), ("erin", 1)])
def test_transfers_of_a_task_are_listed_for_those_who_may_read_them(client, scenario, created, reader, count):
    """Listing by task_sid answers the task's transfers the caller may read, and no others."""
    response = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}",
                          headers=bearer(scenario.tokens[reader]))
    assert response.status_code == 200
    assert [transfer["id"] for transfer in response.get_json()["transfers"]] == [created["id"]] * count


@pytest.mark.parametrize("query", ["", "?task_sid=", "?task_sid=WT42"])
def test_listing_needs_a_valid_task_sid(client, alice, query):
    """Listing without a valid task_sid is a 400 naming task_sid."""
    response = client.get(f"/v1/transfers{query}", headers=alice)
    assert response.status_code == 400 and error_of(response)["field"] == "task_sid"


# Canceling


@pytest.mark.parametrize("canceler", ["alice", "erin"])
def test_the_sender_or_a_supervisor_cancels_a_pending_transfer(client, scenario, created, jobs, canceler):
    """Canceling a pending transfer is a 202 with the transfer, and the cancel job names who asked."""
    response = client.post(f"/v1/transfers/{created['id']}/cancel", headers=bearer(scenario.tokens[canceler]))
    assert response.status_code == 202 and response.get_json()["id"] == created["id"]
    # Taken before the transfer's first run (new transfers wait behind work on transfers under way).
    assert jobs()[0].name == CANCEL_TRANSFER
    assert jobs()[0].args == [created["id"], scenario.agents[canceler]]


def test_another_agent_cannot_cancel_a_transfer(client, scenario, created, jobs):
    """An agent who did not send the transfer gets a 403 not_your_transfer, and nothing is enqueued."""
    response = client.post(f"/v1/transfers/{created['id']}/cancel", headers=bearer(scenario.tokens["bob"]))
    assert response.status_code == 403 and error_of(response)["code"] == "not_your_transfer"
    assert CANCEL_TRANSFER not in [job.name for job in jobs()]


@pytest.mark.parametrize("status, code", [(t.ACCEPTED, "already_accepted"), (t.COMPLETED, "already_accepted"),
                                          (t.FAILED, "already_finished")])
def test_a_transfer_past_its_offer_cannot_be_canceled(client, alice, store, created, jobs, status, code):
    """An accepted or completed transfer is a 409 already_accepted; a failed one a 409 already_finished."""
    replace(store, created["id"], status=status)
    response = client.post(f"/v1/transfers/{created['id']}/cancel", headers=alice)
    assert response.status_code == 409 and error_of(response)["code"] == code
    assert CANCEL_TRANSFER not in [job.name for job in jobs()]


def test_canceling_a_canceled_transfer_is_idempotent(client, alice, store, created, jobs):
    """A transfer already canceled answers 202 again and enqueues nothing."""
    replace(store, created["id"], status=t.CANCELED)
    response = client.post(f"/v1/transfers/{created['id']}/cancel", headers=alice)
    assert response.status_code == 202 and response.get_json()["status"] == "canceled"
    assert CANCEL_TRANSFER not in [job.name for job in jobs()]


def test_canceling_an_unknown_transfer_is_not_found(client, alice):
    """Canceling an id that names no transfer is a 404 transfer_not_found."""
    response = client.post("/v1/transfers/tr_nothing/cancel", headers=alice)
    assert response.status_code == 404 and error_of(response)["code"] == "transfer_not_found"
