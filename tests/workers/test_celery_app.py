"""Enqueueing (workers.celery_app.send_job) through one kept producer per process and thread."""

from __future__ import annotations

import os
import threading

from workers.celery_app import TRANSFER_INBOX, create_celery, kept_producer, send_job


def test_every_message_of_a_thread_goes_through_one_kept_producer(config, store):
    """send_job publishes each message through the same producer, kept beside the app, instead of taking one from
    Celery's pool for each; the messages are all in the queue."""
    celery = create_celery(config)
    send_job(celery, TRANSFER_INBOX, "tr_first")
    producer = kept_producer(celery)
    for number in range(3):
        send_job(celery, TRANSFER_INBOX, f"tr_{number}")
    assert kept_producer(celery) is producer
    assert store.queue_depth("celery") == 4


def test_another_thread_or_a_forked_process_gets_a_producer_of_its_own(config, monkeypatch):
    """A kombu producer is not shared: another thread makes its own, and so does a child process (another pid)."""
    celery = create_celery(config)
    producer = kept_producer(celery)
    in_thread = []
    thread = threading.Thread(target=lambda: in_thread.append(kept_producer(celery)))
    thread.start()
    thread.join()
    assert in_thread[0] is not producer

    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)
    assert kept_producer(celery) is not producer
