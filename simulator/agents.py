"""Scripted agents: workers that answer their offers by a policy, as people at Flex UIs would.

A policy is a list of steps, consumed one per offer (``reservation.created``) to that worker; the
last step repeats. Each step is ``{"action": "accept" | "reject" | "ignore", "delay": seconds}``,
the delay in simulated seconds (default 0.2). ``ignore`` lets the reservation time out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.core import Clock, SimError

log = logging.getLogger(__name__)

ACTIONS = {"accept": "accepted", "reject": "rejected", "ignore": None}
DEFAULT_DELAY = 0.2


@dataclass(frozen=True)
class Step:
    """What the agent does with one offer, and after how many simulated seconds."""

    action: str
    delay: float = DEFAULT_DELAY

    @classmethod
    def parse(cls, step: Mapping[str, Any]) -> Step:
        """A step from its JSON form; raises ValueError for an unknown action or a bad delay."""
        action = step.get("action")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        delay = step.get("delay", DEFAULT_DELAY)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"delay must be a number of seconds >= 0, not {delay!r}")
        return cls(action, float(delay))

    def to_json(self) -> dict[str, Any]:
        """The step's JSON form."""
        return {"action": self.action, "delay": self.delay}


@dataclass(frozen=True)
class Answer:
    """One offer a scripted agent answered (or chose to ignore)."""

    worker_sid: str
    task_sid: str
    reservation_sid: str
    action: str


@dataclass
class _Policy:
    steps: tuple[Step, ...]
    offers: int = 0

    def next_step(self) -> Step:
        step = self.steps[min(self.offers, len(self.steps) - 1)]
        self.offers += 1
        return step


class ScriptedAgents:
    """Answers the offers of the workers that have a policy; other workers are left alone.

    ``answers`` lists what the agents decided, in order, for tests to inspect.
    """

    def __init__(self, taskrouter: Any, clock: Clock):
        self.taskrouter = taskrouter
        self.clock = clock
        self.answers: list[Answer] = []
        self._policies: dict[str, _Policy] = {}
        taskrouter.add_listener(self._on_event)

    def set_policy(self, worker_sid: str, steps: Sequence[Mapping[str, Any]]) -> None:
        """Script ``worker_sid``'s next offers; an empty list removes its policy.

        Raises ValueError for a malformed step.
        """
        parsed = tuple(Step.parse(step) for step in steps)
        with self.clock.lock:
            if parsed:
                self._policies[worker_sid] = _Policy(parsed)
            else:
                self._policies.pop(worker_sid, None)

    def policy(self, worker_sid: str) -> list[dict[str, Any]] | None:
        """The worker's steps in JSON form, or None when it has no policy."""
        with self.clock.lock:
            found = self._policies.get(worker_sid)
            return [step.to_json() for step in found.steps] if found else None

    def _on_event(self, event: Mapping[str, str]) -> None:
        if event.get("EventType") != "reservation.created":
            return
        policy = self._policies.get(event.get("WorkerSid", ""))
        if policy is None:
            return
        step = policy.next_step()
        answer = Answer(event["WorkerSid"], event["TaskSid"], event["ReservationSid"], step.action)
        self.answers.append(answer)
        status = ACTIONS[step.action]
        if status is not None:
            self.clock.call_later(step.delay, lambda: self._answer(event["WorkspaceSid"], answer, status))

    def _answer(self, workspace_sid: str, answer: Answer, status: str) -> None:
        try:
            self.taskrouter.update_reservation(workspace_sid, answer.task_sid, answer.reservation_sid, status)
        except SimError as exc:
            # The offer ended meanwhile (timed out, canceled, rescinded): a late click, as in Flex.
            log.debug("scripted %s of %s came too late: %s", status, answer.reservation_sid, exc.message)
