"""New transfers wait behind the work on transfers under way, as kombu's Redis transport really serves them."""

from __future__ import annotations

import json
from types import SimpleNamespace

from baton.infrastructure.engine import Outcome
from workers.celery_app import NEW_TRANSFER_PRIORITY, RUN_TRANSFER, TRANSFER_INBOX, create_celery, send_job
from workers.tasks import _follow


def test_a_worker_takes_events_of_transfers_under_way_before_new_transfers(config, store):
    """Three new transfers enqueued before an event: the event is taken first, then the transfers in order."""
    celery = create_celery(config)
    for number in range(3):
        send_job(celery, RUN_TRANSFER, f"tr_new{number}", priority=NEW_TRANSFER_PRIORITY)
    send_job(celery, TRANSFER_INBOX, "tr_under_way")
    assert store.queue_depth("celery") == 4

    taken = []
    with celery.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery", no_ack=True)
        for _ in range(4):
            message = queue.get(timeout=1)
            taken.append((message.headers["task"], json.loads(message.body)[0][0]))
        queue.close()
    assert taken == [(TRANSFER_INBOX, "tr_under_way"), (RUN_TRANSFER, "tr_new0"), (RUN_TRANSFER, "tr_new1"),
                     (RUN_TRANSFER, "tr_new2")]
    assert store.queue_depth("celery") == 0



def test_a_run_that_leaves_events_in_the_inbox_enqueues_the_job_that_reads_them(config, store):
    """After a run, a retry is enqueued for later and, when events were left in the inbox, a job for them now."""
    celery = create_celery(config)
    _follow(SimpleNamespace(app=celery), "tr_busy", Outcome(inbox_waiting=True))
    _follow(SimpleNamespace(app=celery), "tr_quiet", Outcome())
    with celery.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery", no_ack=True)
        message = queue.get(timeout=1)
        queue.close()
    assert (message.headers["task"], json.loads(message.body)[0]) == (TRANSFER_INBOX, ["tr_busy"])
    assert store.queue_depth("celery") == 0
