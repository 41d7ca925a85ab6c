"""The worker's Celery consumer, made to survive losing Redis while it holds unacknowledged messages.

Celery 5.7 with kombu 5.7 on Redis: when the broker connection drops while the task channel holds a
message not yet acknowledged (a task running under late acks, a reserved or a countdown message),
the consumer's reconnect path kills the worker instead of reconnecting ("Unrecoverable error:
AttributeError: 'NoneType' object has no attribute 'hostname'"). Its steps, in
``Consumer.on_connection_error_after_connected``:

1. ``Connection.collect()`` closes the channels: the task channel's ``close()`` first reads the
   reply of its pending BRPOP, which raises on the dead socket before the channel is marked closed;
   the transport's ``close_connection`` then stops at the remote-control channel, whose close fails
   too (it deletes its auto-delete queue, and Redis is away), so the task channel is never retried.
   ``collect()`` then drops the transport anyway (``transport.client = None``).
2. ``Connection.close()`` closes the task channel again; its restore of the unacknowledged messages
   needs the dropped transport's address: AttributeError, which is not a connection error, so it
   escapes Celery's error handling and stops the worker.

The fix: close the task channel before Celery tears the connection down, while the transport is
still there, with the second attempt the first one needs (the failed BRPOP read has been cleared by
then); the rest of Celery's reconnect path is unchanged. Closing puts the unacknowledged messages
back in the queue when Redis answers; when it is away they stay in kombu's ``unacked`` hash, where
any worker restores them once the visibility timeout has passed, as after a worker crash.
Tested by tests/e2e/test_outage_and_shutdown.py (an outage in the middle of a task); drop this class
once kombu's teardown survives that test on its own.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.common import ignore_errors

# A redis channel's close() fails once on its pending BRPOP reply, then goes through.
CLOSE_ATTEMPTS = 3


class Consumer(CeleryConsumer):
    """Celery's consumer (``worker_consumer``), closing its task channel first when the connection is lost."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        channel = getattr(self.task_consumer, "channel", None)
        if self.connection is not None and channel is not None:
            for _ in range(CLOSE_ATTEMPTS):
                if getattr(channel, "closed", True):
                    break
                ignore_errors(self.connection, channel.close)
        super().on_connection_error_after_connected(exc)
