"""The transfer workflow, the one ``TRANSFER_WORKFLOW_SID`` names (contract for operators).

- "to worker": ``transferTargetType == "worker"`` → first the target agent, in the everyone queue,
  for ``offer_timeout_s``; then the fallback queue, without a timeout;
- one filter per task queue: ``transferTargetType == "queue" AND transferQueueSid == "WQ…"`` → that
  queue, without a timeout;
- a default filter to the fallback queue, for a task that matches no filter.

No step that can be a filter's last has a timeout: TaskRouter's docs say a task that times out of
the last step of its filter is canceled, and the default filter takes only tasks that match no
filter (docs/twilio-behaviour.md, "End of a filter"), so a transfer never depends on falling
through. Every step leaves out ``task.transferExcludedWorkers`` (the sender, and every agent who
declined), and the agent step names its agent with an expression rather than ``known_worker_sid``:
an expression is evaluated against the task's attributes at every offer, so once Baton excludes an
agent who declined, TaskRouter stops offering them the task even when it keeps the task in the
step it was in (an update made while the task is reserved does not re-drive it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXCLUDE_EXPRESSION = "worker.sid NOT IN task.transferExcludedWorkers"
TARGET_AGENT_EXPRESSION = f"worker.sid == task.transferTargetSid AND {EXCLUDE_EXPRESSION}"


def transfer_workflow_configuration(everyone_queue_sid: str, queue_sids: Iterable[str], fallback_queue_sid: str,
                                    offer_timeout_s: int) -> dict[str, Any]:
    """The workflow configuration (TaskRouter's ``Configuration`` JSON) Baton's transfers route through."""
    filters = [{
        "filter_friendly_name": "to worker",
        "expression": 'transferTargetType == "worker"',
        "targets": [{"queue": everyone_queue_sid, "expression": TARGET_AGENT_EXPRESSION, "timeout": offer_timeout_s},
                    {"queue": fallback_queue_sid, "expression": EXCLUDE_EXPRESSION}],
    }]
    filters += [{
        "filter_friendly_name": f"to queue {queue_sid}",
        "expression": f'transferTargetType == "queue" AND transferQueueSid == "{queue_sid}"',
        "targets": [{"queue": queue_sid, "expression": EXCLUDE_EXPRESSION}],
    } for queue_sid in sorted(queue_sids)]
    return {"task_routing": {"filters": filters, "default_filter": {"queue": fallback_queue_sid}}}
