"""Summaries: the extractive provider, and the OpenAI-compatible one against a local fake endpoint."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from baton.domain.attributes import AGENT, CUSTOMER, SYSTEM, Context, ContextMessage
from baton.infrastructure.config import Config
from baton.infrastructure.summary import (
    SUMMARY_MAX_CHARS,
    ExtractiveSummarizer,
    OpenAISummarizer,
    SummaryResult,
    chat_completions_url,
    summarizer_for,
)

CARD = "4111 1111 1111 1111"
KEY = "sk-test-secret-key-0123456789"


def conversation(*messages: tuple[str, str, str], count: int | None = None, earlier: int = 0,
                 subject: str | None = None) -> Context:
    copied = tuple(ContextMessage(role, f"2024-05-01T{at}Z", body) for role, at, body in messages)
    return Context(copied, len(copied) if count is None else count, earlier, subject)


LATE_ORDER = conversation(
    (SYSTEM, "10:00:00", "Chat started"),
    (CUSTOMER, "10:00:05", "Hi there!"),
    (CUSTOMER, "10:00:20", f"Hello, my order 4417 never arrived and I paid with {CARD}."),
    (AGENT, "10:02:00", "Sorry to hear that. I see ticket #88123 already open for account AB-7781."),
    (CUSTOMER, "10:20:00", "Can I get a refund instead?"),
    (AGENT, "10:25:30", "Let me pass you to billing, they handle refunds."),
)


# Extractive

def test_extractive_summary_states_reason_references_last_exchange_and_history():
    """The customer's first real message, the references, the last exchange and the time span, in that order."""
    result = ExtractiveSummarizer().summarize(LATE_ORDER, notes="VIP")

    assert (result.provider, result.fallback_reason) == ("extractive", None)
    assert result.text.splitlines() == [
        f"Reason: My order 4417 never arrived and I paid with {CARD}.",
        "References: order 4417, ticket 88123, account AB-7781",
        'Last: customer: "Can I get a refund instead?" / agent: "Let me pass you to billing, they handle refunds."',
        "History: 6 messages over 25 min",
    ]


def test_extractive_summary_is_deterministic():
    """The same context always gives the same summary."""
    summarizer = ExtractiveSummarizer()

    assert summarizer.summarize(LATE_ORDER, notes=None) == summarizer.summarize(LATE_ORDER, notes="other")


def test_extractive_summary_of_a_long_email_thread_stays_short():
    """Subject, a partial history and earlier transfers are shown, and the text never exceeds 600 characters."""
    context = conversation(
        (CUSTOMER, "08:00:00", "Good morning team, " + "I need help with my booking BK-20240501 please. " * 40),
        (AGENT, "09:00:00", "Which dates? " * 100),
        (CUSTOMER, "11:30:00", "June 3 to June 9. " * 100),
        count=42, earlier=2, subject="Booking change " * 30)

    text = ExtractiveSummarizer().summarize(context, notes=None).text
    assert len(text) <= SUMMARY_MAX_CHARS
    assert text.startswith("Reason: I need help with my booking BK-20240501 please.")
    assert "\nSubject: Booking change" in text and "booking BK-20240501" in text
    assert text.endswith("History: 42 messages, the last 3 over 3 h 30 min; 2 earlier transfers")


def test_extractive_summary_of_an_empty_context():
    """Without messages the summary still says how many there were."""
    assert ExtractiveSummarizer().summarize(conversation(count=0), notes=None).text == "History: 0 messages"


# The OpenAI-compatible provider

@dataclass
class FakeLLM:
    """A chat-completions endpoint on localhost: it answers as ``mode`` says and records each request."""

    url: str
    mode: str = "ok"
    answer: str = "Customer wants a refund for order 4417."
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def llm():
    fake = FakeLLM("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
            if fake.mode == "slow":
                time.sleep(1.0)
            status, payload = {
                "ok": (200, json.dumps({"choices": [{"message": {"role": "assistant", "content": fake.answer}}]})),
                "slow": (200, "{}"),
                "error": (500, json.dumps({"error": {"message": "overloaded"}})),
                "not json": (200, "<html>gateway</html>"),
                "no choices": (200, json.dumps({"choices": []})),
            }[fake.mode]
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}/v1/chat/completions"
    yield fake
    server.shutdown()
    server.server_close()


def test_openai_success_sends_only_redacted_text_with_the_key_as_bearer(llm):
    """The endpoint gets the model, a redacted transcript and the notes; the key goes only in the header."""
    llm.answer = f"  Refund for order 4417, paid with {CARD}.  "
    summarizer = OpenAISummarizer(llm.url, KEY, "gpt-test")

    result = summarizer.summarize(LATE_ORDER, notes=f"card {CARD}, be kind")
    assert (result.text, result.provider, result.fallback_reason) == (
        "Refund for order 4417, paid with [redacted].", "openai", None)
    (request,) = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert "4111" not in request["body"] and KEY not in request["body"]
    sent = json.loads(request["body"])
    assert sent["model"] == "gpt-test" and [m["role"] for m in sent["messages"]] == ["system", "user"]
    transcript = sent["messages"][1]["content"]
    assert "[redacted], be kind" in transcript and "customer: Can I get a refund instead?" in transcript


@pytest.mark.parametrize(("mode", "reason"), [
    ("error", "LLM answered HTTP 500"),
    ("not json", "LLM answer was not JSON"),
    ("no choices", "LLM answer held no summary text"),
])
def test_openai_errors_fall_back_to_extractive(llm, caplog, mode, reason):
    """An error status or a malformed answer gives the extractive summary and says why, logging no secret."""
    llm.mode = mode
    caplog.set_level(logging.DEBUG)

    result = OpenAISummarizer(llm.url, KEY, "gpt-test").summarize(LATE_ORDER, notes="secret notes")
    assert result == SummaryResult(ExtractiveSummarizer().summarize(LATE_ORDER, notes=None).text, "extractive", reason)
    assert KEY not in caplog.text and "secret notes" not in caplog.text and "refund" not in caplog.text
    assert reason in caplog.text


def test_openai_timeout_falls_back_quickly(llm):
    """An endpoint slower than the timeout is abandoned after the timeout, not after its answer."""
    llm.mode = "slow"

    started = time.perf_counter()
    result = OpenAISummarizer(llm.url, KEY, "gpt-test", timeout_s=0.2).summarize(LATE_ORDER, notes=None)
    assert time.perf_counter() - started < 0.9
    assert (result.provider, result.fallback_reason) == ("extractive", "LLM timed out after 0.2 s")
    assert result.text.startswith("Reason: My order 4417")


def test_openai_unreachable_falls_back():
    """A refused connection gives the extractive summary and names the failure."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = OpenAISummarizer(f"http://127.0.0.1:{port}/v1", None, "m").summarize(LATE_ORDER, notes=None)
    assert (result.provider, result.fallback_reason) == ("extractive", "LLM unreachable (ConnectionError)")


def test_no_key_means_no_authorization_header(llm):
    """A local endpoint without a key is called without an Authorization header."""
    OpenAISummarizer(llm.url, None, "local").summarize(LATE_ORDER, notes=None)

    assert "Authorization" not in llm.requests[0]["headers"]


def test_llm_url_may_be_the_endpoint_or_the_base():
    """SUMMARY_LLM_URL names the chat-completions endpoint, or the API base it is appended to."""
    assert chat_completions_url("https://api.openai.com/v1") == "https://api.openai.com/v1/chat/completions"
    assert chat_completions_url("https://llm.example/v1/chat/completions?api-version=2024") == \
        "https://llm.example/v1/chat/completions?api-version=2024"
    assert chat_completions_url("http://localhost:11434/v1/") == "http://localhost:11434/v1/chat/completions"


def test_summarizer_for_the_configured_provider():
    """SUMMARY_PROVIDER picks the summarizer; openai takes the LLM settings."""
    common = dict(twilio_account_sid="AC1", twilio_auth_token="t", twilio_workspace_sid="WS1",
                  transfer_workflow_sid="WW1", public_base_url="https://baton.example.com")

    assert summarizer_for(Config(**common)) == ExtractiveSummarizer()
    assert summarizer_for(Config(**common, summary_provider="openai", summary_llm_url="https://llm.example/v1",
                                 summary_llm_api_key=KEY, summary_llm_model="gpt-test")) == \
        OpenAISummarizer("https://llm.example/v1", KEY, "gpt-test")
