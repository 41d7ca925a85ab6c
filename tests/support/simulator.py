"""Helpers for the simulator's tests: waiting, clients of the simulator, a webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.request_validator import RequestValidator

from simulator import Simulator


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.01)
    pytest.fail(f"condition not met within {timeout} s")


class Api:
    """Plain HTTP to the simulator's REST layout, authenticated as the account."""

    def __init__(self, simulator: Simulator):
        self.base_url = simulator.url
        self.session = requests.Session()
        self.session.auth = (simulator.account_sid, simulator.auth_token)

    def url(self, product: str, path: str) -> str:
        return f"{self.base_url}/{product}{path}"

    def get(self, product: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(product, path), **kwargs)

    def post(self, product: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url(product, path), **kwargs)

    def delete(self, product: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url(product, path), **kwargs)


@dataclass(frozen=True)
class Webhook:
    """One webhook the receiver got; ``valid`` says whether its X-Twilio-Signature checked out."""

    path: str
    params: dict[str, str]
    valid: bool


class Receiver:
    """A local HTTP endpoint recording the webhooks posted to it, checking their signatures."""

    def __init__(self, auth_token: str):
        self.received: list[Webhook] = []
        validator = RequestValidator(auth_token)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                params = dict(parse_qsl(body, keep_blank_values=True))
                signature = self.headers.get("X-Twilio-Signature", "")
                valid = validator.validate(receiver.url + self.path, params, signature)
                receiver.received.append(Webhook(self.path, params, valid))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events(self, event_type: str) -> list[Webhook]:
        """The webhooks received so far with this ``EventType``."""
        return [hook for hook in list(self.received) if hook.params.get("EventType") == event_type]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
