"""/metrics and the logs of the real processes: gunicorn with 2 workers, a Celery worker and beat, the simulator.

The stack's web processes write their metrics into the stack's own PROMETHEUS_MULTIPROC_DIR; its worker
writes its own into Redis; one scrape shows both.
"""

from __future__ import annotations

import glob
import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from simulator.scenario import open_conversation

pytestmark = pytest.mark.e2e


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus-client's own parser, by name and labels."""
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def settled_scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape once the samples of earlier tests have all landed: the worker sends its own every second
    (baton.infrastructure.metrics.RedisSink), so a transfer that ended just before may not be counted yet."""
    def counted(samples):
        return {key: count for key, count in samples.items()
                if key[0].startswith("baton_") and key[0] != "baton_celery_queue_depth"}

    samples, deadline = scrape(url), time.monotonic() + 15
    while True:
        time.sleep(1.5)
        again = scrape(url)
        if counted(again) == counted(samples):
            return again
        assert time.monotonic() < deadline, "the metrics never settled"
        samples = again


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def webhook_counts(samples) -> Counter:
    return Counter({(dict(labels)["endpoint"], dict(labels)["status"]): count
                    for (name, labels), count in samples.items() if name == "baton_webhook_requests_total"})


def delivered(stack) -> Counter:
    """The webhooks the simulator delivered to Baton, by endpoint and the status Baton answered."""
    stack.simulator.dispatcher.wait_idle()
    return Counter((d.url.rsplit("/", 1)[-1], str(d.status)) for d in stack.simulator.dispatcher.deliveries
                   if d.url.startswith(stack.web_url) and not d.dropped and d.status is not None)


def webhooks_by_process(metrics_dir: str) -> dict[str, float]:
    """How many webhooks each gunicorn worker counted, from its own files."""
    counts = {}
    for path in glob.glob(os.path.join(metrics_dir, "counter_*.db")):
        pid = Path(path).stem.split("_")[-1]
        counts[pid] = sum(sample.value for family in MultiProcessCollector.merge([path])
                          if family.name == "baton_webhook_requests" for sample in family.samples)
    return counts


def json_lines(path: Path) -> list[dict]:
    """The complete lines a process has written, each parsed as JSON (a line still being written is left out)."""
    text = path.read_text(errors="replace")
    lines = text.splitlines()[:None if text.endswith("\n") else -1]
    # The worker may print Python's warning about running as root before logging is set up: nothing after.
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return [json.loads(line) for line in lines[first:]]


def test_a_transfer_is_counted_with_the_webhooks_and_twilio_calls_of_both_halves(stack, baton):
    """After an end-to-end transfer, /metrics counts it completed, with its time to accept and offers, and the
    Twilio calls of the web (IAM) and of the worker (the invite) in the same series."""
    scenario = stack.scenario
    before = settled_scrape(stack.web_url)
    conversation = open_conversation(stack.simulator, scenario, "alice")
    # A token of Alice's that no other test had validated: the web caches IAM's answers, and the validation counted
    # below must happen whatever ran before.
    token = stack.simulator.iam.mint_token(scenario.agents["alice"], "alice")
    answer = baton.session.post(f"{stack.web_url}/v1/transfers",
                                json={"task_sid": conversation.task_sid, "to": scenario.agents["bob"]},
                                headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 202, answer.text
    assert baton.wait(answer.json()["id"])["status"] == "completed"
    stack.simulator.dispatcher.wait_idle()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The worker sends its samples every second (baton.infrastructure.metrics.RedisSink).
    deadline = time.monotonic() + 10
    after = scrape(stack.web_url)
    while (grew("baton_twilio_request_duration_seconds_count", endpoint="participants.update") < 1
           or grew("baton_transfers_total", outcome="completed", mode="cold") < 1):
        assert time.monotonic() < deadline, "the worker's samples never reached Redis"
        time.sleep(0.2)
        after = scrape(stack.web_url)

    assert grew("baton_transfers_total", outcome="completed", mode="cold") == 1
    assert grew("baton_transfer_accept_seconds_count", mode="cold") == 1
    assert grew("baton_transfer_accept_seconds_bucket", mode="cold", le="+Inf") == 1
    assert grew("baton_transfer_offers_count", outcome="completed") == 1
    assert grew("baton_transfer_offers_sum", outcome="completed") >= 1
    # The web validated Alice's token; the worker created the invite and closed Alice's participant.
    assert grew("baton_twilio_request_duration_seconds_count", endpoint="tokens.validate") >= 1
    assert grew("baton_twilio_request_duration_seconds_count", endpoint="invites.create") == 1
    assert grew("baton_twilio_request_duration_seconds_count", endpoint="participants.update") >= 1
    assert ("baton_celery_queue_depth", (("queue", "celery"),)) in after
    assert grew("baton_webhook_requests_total", endpoint="taskrouter", status="204") >= 3


def test_two_gunicorn_workers_are_counted_together_on_every_scrape(stack, baton):
    """With webhooks served by both gunicorn workers, every scrape, whichever worker answers it, shows the
    same counts, and they are exactly the webhooks delivered."""
    sim, scenario = stack.simulator, stack.scenario
    metrics_dir = stack.environment()["PROMETHEUS_MULTIPROC_DIR"]
    conversation = open_conversation(sim, scenario, "alice")
    answer = baton.transfer("alice", conversation.task_sid, scenario.agents["bob"])
    baton.wait(answer.json()["id"])

    # Events of tasks that are not transfers, sent concurrently until both workers have served some.
    url = f"{stack.web_url}/webhooks/taskrouter"
    extra = Counter()

    def send(n: int) -> None:
        fields = {"EventType": "task.created", "Sid": f"EV{uuid.uuid4().hex}", "TaskSid": "WT" + "0" * 32,
                  "TaskAttributes": "{}"}
        status = requests.post(url, data=fields, headers={"X-Twilio-Signature": sim.dispatcher.signature(url, fields)},
                               timeout=10).status_code
        with lock:
            extra[("taskrouter", str(status))] += 1

    lock = threading.Lock()
    for _ in range(20):
        if sum(1 for count in webhooks_by_process(metrics_dir).values() if count) >= 2:
            break
        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # The transfer's own events may still be on their way (the sender's participant removed, after completion).
    sim.dispatcher.wait_idle()
    per_process = webhooks_by_process(metrics_dir)
    assert sum(1 for count in per_process.values() if count) >= 2, per_process

    expected = delivered(stack) + extra
    scrapes = [webhook_counts(scrape(stack.web_url)) for _ in range(8)]
    assert all(counts == expected for counts in scrapes), (expected, scrapes)
    assert sum(expected.values()) == sum(per_process.values())


def test_logs_are_json_and_one_request_id_follows_a_transfer_into_the_worker(stack, baton):
    """Every line the web and the worker write is a JSON object with time, level, logger and message; the
    X-Request-ID of a transfer request is on the web's line for it and on the worker's lines for its run."""
    scenario = stack.scenario
    request_id = f"e2e-{uuid.uuid4()}"
    conversation = open_conversation(stack.simulator, scenario, "alice")
    answer = baton.session.post(f"{stack.web_url}/v1/transfers",
                                json={"task_sid": conversation.task_sid, "to": scenario.agents["bob"]},
                                headers={"Authorization": f"Bearer {scenario.tokens['alice']}",
                                         "X-Request-ID": request_id}, timeout=10)
    assert answer.status_code == 202 and answer.headers["X-Request-ID"] == request_id
    transfer_id = answer.json()["id"]
    baton.wait(transfer_id)

    web = json_lines(stack.processes["web"].log_path)
    worker = json_lines(stack.processes["worker"].log_path)
    for line in web + worker:
        assert {"time", "level", "logger", "message", "process"} <= set(line), line
    [request_line] = [line for line in web if line.get("request_id") == request_id]
    assert request_line["message"] == "POST /v1/transfers 202"
    assert (request_line["transfer_id"], request_line["task_sid"]) == (transfer_id, conversation.task_sid)
    assert request_line["status"] == 202 and request_line["duration_ms"] >= 0
    run = [line for line in worker if line.get("request_id") == request_id]
    assert {line["transfer_id"] for line in run} == {transfer_id}
    # Messages go through the redaction, which may take a digit run of the hex id for a card number: the id is
    # checked above, in its own field.
    assert any(line["message"].startswith("transfer tr_") and line["message"].endswith(" requested -> routing")
               for line in run)
    # The TaskRouter events that moved it, as the web received them and as the worker applied them.
    accepted = [line for line in worker if line.get("transfer_id") == transfer_id and "-> accepted" in line["message"]]
    assert accepted and accepted[0]["event_sid"].startswith("EV") and accepted[0]["task_sid"].startswith("WT")
    event_request = accepted[0]["request_id"]
    assert any(line.get("request_id") == event_request and line["path"] == "/webhooks/taskrouter" for line in web)
