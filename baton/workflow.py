"""The transfer workflow of design.md §4, the one ``TRANSFER_WORKFLOW_SID`` names (contract for operators).

- "to worker": ``transferTargetType == "worker"`` → the target agent (known worker) in the everyone
  queue, for ``offer_timeout_s``;
- one filter per task queue: ``transferTargetType == "queue" AND transferQueueSid == "WQ…"`` → that
  queue, never offering the task to an excluded agent;
- a default filter to the fallback queue, so no transfer task is ever stranded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXCLUDE_EXPRESSION = "worker.sid NOT IN task.transferExcludedWorkers"


def transfer_workflow_configuration(everyone_queue_sid: str, queue_sids: Iterable[str], fallback_queue_sid: str,
                                    offer_timeout_s: int) -> dict[str, Any]:
    """The workflow configuration (TaskRouter's ``Configuration`` JSON) Baton's transfers route through."""
    filters = [{
        "filter_friendly_name": "to worker",
        "expression": 'transferTargetType == "worker"',
        "targets": [{"queue": everyone_queue_sid, "known_worker_sid": "task.transferTargetSid",
                     "timeout": offer_timeout_s}],
    }]
    filters += [{
        "filter_friendly_name": f"to queue {queue_sid}",
        "expression": f'transferTargetType == "queue" AND transferQueueSid == "{queue_sid}"',
        "targets": [{"queue": queue_sid, "expression": EXCLUDE_EXPRESSION}],
    } for queue_sid in sorted(queue_sids)]
    return {"task_routing": {"filters": filters, "default_filter": {"queue": fallback_queue_sid}}}
