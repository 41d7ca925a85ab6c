"""A local, stateful Twilio simulator: TaskRouter, Flex Interactions, Conversations, IAM and Event Streams.

``Simulator`` wires the products together around one lock, one scaled clock and one webhook
dispatcher, and serves them over HTTP under the ``TWILIO_API_BASE`` layout (see `simulator.server`)::

    with Simulator(time_scale=0.01) as sim:
        base_url = sim.serve()      # http://127.0.0.1:PORT
        sim.agents.set_policy(worker_sid, [{"action": "accept"}])
        sim.faults.add(method="POST", path="/Invites", kind=429, rate=0.2)   # see simulator.faults
"""

from __future__ import annotations

import threading
from types import TracebackType

from simulator.agents import ScriptedAgents
from simulator.conversations import Conversations
from simulator.core import Clock, WebhookDispatcher
from simulator.events import Events
from simulator.faults import Faults
from simulator.flex import Flex
from simulator.httpd import KeepAliveServer
from simulator.iam import Iam
from simulator.profiles import Profile
from simulator.server import RequestLog, SimulatorApp
from simulator.taskrouter import TaskRouter

__all__ = ["Simulator", "DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN"]

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "simulator-auth-token"


class Simulator:
    """One simulated Twilio account.

    ``time_scale`` scales every simulated duration (reservation and task timeouts, scripted agents'
    delays): 0.01 turns a 120 s timeout into 1.2 real seconds. ``webhook_threads`` webhooks are
    delivered at once, so, as with Twilio, they can arrive out of order. ``profile`` names the
    reading of Twilio's ambiguous behaviours it plays (`simulator.profiles`; default ``documented``),
    changeable while it runs through ``self.profile.update(...)``.
    """

    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
                 time_scale: float = 1.0, webhook_threads: int = 4, profile: str = "documented"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.lock = threading.RLock()
        self.clock = Clock(self.lock, time_scale)
        self.dispatcher = WebhookDispatcher(auth_token, threads=webhook_threads)
        self.profile = Profile()
        self.profile.update(profile)
        self.taskrouter = TaskRouter(account_sid, self.clock, self.dispatcher, self.profile)
        self.conversations = Conversations(account_sid, self.clock, self.dispatcher, self.profile)
        self.flex = Flex(account_sid, self.clock, self.taskrouter, self.conversations, self.profile)
        self.iam = Iam(account_sid, self.clock, self.profile)
        self.events = Events(account_sid, auth_token, self.clock, self.dispatcher, self.taskrouter, self.profile)
        self.agents = ScriptedAgents(self.taskrouter, self.clock)
        self.requests = RequestLog()
        self.faults = Faults()
        self.url: str | None = None
        self._server: KeepAliveServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def wsgi_app(self) -> SimulatorApp:
        """The WSGI application serving this simulator."""
        return SimulatorApp(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve over HTTP/1.1 with persistent connections (`simulator.httpd`) from daemon threads (port 0: any
        free port); returns the base URL."""
        if self._server is None:
            self._server = KeepAliveServer((host, port), self.wsgi_app())
            # A short poll interval makes stop() quick; the server thread wakes 20 times a second.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="sim-http", daemon=True)
            self._thread.start()
            self.url = f"http://{host}:{self._server.port}"
        return self.url

    def stop(self) -> None:
        """Stop serving, the clock and webhook delivery; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.faults.close()  # held or delayed requests answer now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.clock.stop()
        self.dispatcher.stop()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
