"""The simulator's HTTP server: a WSGI application over HTTP/1.1 with persistent connections.

Werkzeug's development server ends every answer with ``Connection: close``, so every request paid
for a TCP connection and a thread on both sides; in the bench that CPU was counted against the
simulator and against Baton, whose gateway keeps a pool of connections to Twilio as real clients
do. This server serves each connection from a thread of its own and keeps it open until the client
closes it or asks to (``Connection: close``), or it stays idle for ``IDLE_TIMEOUT_S``.

An application that raises ``ConnectionError`` has its connection closed without an answer (the
simulator's ``drop`` fault). A request's body is read whole before the application runs, and the
answer is collected whole and sent with its ``Content-Length``, so an application that reads less
than the body or answers without a length cannot put the next request on the connection out of step.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# A connection idle this long is closed: its thread ends, and a client that is gone is forgotten.
IDLE_TIMEOUT_S = 60.0
# Answers that carry no body (RFC 9110 §6.4.1), so no Content-Length either.
_BODILESS = frozenset({204, 304})


class KeepAliveServer(socketserver.ThreadingTCPServer):
    """Serves ``app`` on ``address`` (port 0: any free port), one daemon thread per connection."""

    allow_reuse_address = True
    daemon_threads = True
    # Connections the kernel queues before they are accepted (the standard library's default is 5).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WSGIApplication):
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening, and end every open connection once the answer it is working on has gone.

        Shutting down the reading side wakes a thread waiting for a next request (it reads the end
        of the stream and closes); an answer being written is not cut short.
        """
        super().server_close()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    """One connection: its requests in turn, each answered by the server's WSGI application."""

    server: KeepAliveServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    # Headers and body go out in two writes; without TCP_NODELAY the second could wait for an ACK.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        status_and_headers: list[Any] = []
        written: list[bytes] = []  # by PEP 3333's write() and the iterable alike, in order

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            status_and_headers[:] = [status, headers]
            return written.append

        try:
            chunks = self.server.app(self._environ(body), start_response)
            try:
                written.extend(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except ConnectionError:
            self.close_connection = True
            return
        except Exception:
            log.exception("the application failed on %s %s", self.command, self.path)
            self.send_error(500)
            return
        self._answer(*status_and_headers, b"".join(written))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def _read_body(self) -> bytes | None:
        """The request's body, or None when it cannot be framed (answered with an error, connection closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "A request body needs a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Invalid Content-Length")
            return None
        return self.rfile.read(length)

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # PEP 3333: the path unquoted, its bytes as latin-1.
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name in set(self.headers.keys()):
            key = name.upper().replace("-", "_")
            value = ",".join(self.headers.get_all(name))
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
        return environ

    def _answer(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code, _, reason = status.partition(" ")
        status_code = int(code)
        self.send_response(status_code, reason)
        framing = {"content-length", "transfer-encoding", "connection"}
        for name, value in headers:
            # A HEAD's Content-Length is the GET's, which only the application knows.
            if name.lower() not in framing or (self.command == "HEAD" and name.lower() == "content-length"):
                self.send_header(name, value)
        has_body = status_code >= 200 and status_code not in _BODILESS
        if has_body and self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if has_body and self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No line per request: the simulator's request log keeps them."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's name)
        log.debug("%s %s", self.address_string(), format % args)
