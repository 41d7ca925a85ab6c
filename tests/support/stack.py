"""Helpers for the tests against a live stack (tests/fixtures/stack.py): its settings, and Baton's API as a client."""

from __future__ import annotations

import time

import pytest
import requests

from baton.operator.devstack import DevStack

TIME_SCALE = 0.05
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789"


class Baton:
    """Baton's agent and admin API, as a Flex UI plugin or an operator calls it."""

    def __init__(self, stack: DevStack, admin_token: str = ADMIN_TOKEN):
        self.url = stack.web_url
        self.tokens = stack.scenario.tokens
        self.admin_token = admin_token
        self.session = requests.Session()

    def transfer(self, agent: str, task_sid: str, to: str, **fields) -> requests.Response:
        return self.session.post(f"{self.url}/v1/transfers", json={"task_sid": task_sid, "to": to, **fields},
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)

    def get(self, transfer_id: str, agent: str = "erin") -> dict:
        response = self.session.get(f"{self.url}/v1/transfers/{transfer_id}",
                                    headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def cancel(self, transfer_id: str, agent: str) -> requests.Response:
        return self.session.post(f"{self.url}/v1/transfers/{transfer_id}/cancel",
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}, timeout=10)

    def settings(self, **changes) -> dict:
        response = self.session.patch(f"{self.url}/v1/settings", json=changes,
                                      headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait(self, transfer_id: str, states=("completed", "failed", "canceled"), timeout: float = 20) -> dict:
        """The transfer once it reaches one of ``states``; fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            transfer = self.get(transfer_id)
            if transfer["status"] in states:
                return transfer
            if time.monotonic() > deadline:
                pytest.fail(f"transfer stuck in {transfer['status']}: {transfer['timeline']}")
            time.sleep(0.05)
