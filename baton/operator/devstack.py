"""Baton's real processes, as the Procfile starts them, against an in-process Twilio simulator.

Used by ``baton demo`` and by the end-to-end tests: the simulator runs in this process, the web
(gunicorn) and worker (Celery) processes are started from the ``Procfile`` lines with the
environment a deployment would have, each in its own process group so that stopping the stack
stops everything it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from simulator import Simulator
from simulator.scenario import Scenario, build_default_scenario, connect_baton

# The Procfile at the repository's root, two folders above this one (baton/operator/).
PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """The process types of a Procfile and their commands."""
    processes = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


class RedisServer:
    """A private ``redis-server`` on a free port, its data in a temporary folder.

    With ``persistent`` it writes every change to an append-only file, so a stop and a start on
    the same folder keep the data, as a managed Redis does across a restart.
    """

    def __init__(self, persistent: bool = False):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="baton-redis-"))
        self.persistent = persistent
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.popen = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--dir", str(self.dir),
             *persistence], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_redis(self.popen, "127.0.0.1", self.port, "redis-server did not start")
        return self

    def stop(self) -> None:
        if self.popen is not None:
            self.popen.terminate()
            self.popen.wait(10)
            self.popen = None


def wait_for_redis(popen: subprocess.Popen, host: str, port: int, failure: str, timeout_s: float = 10.0) -> None:
    """Return once the redis-server ``popen`` started answers PING on ``host:port``; raise StackError(``failure``)
    if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if popen.poll() is not None or time.monotonic() > deadline:
            raise StackError(failure)
        time.sleep(0.05)


class StackError(RuntimeError):
    """A process of the stack did not come up; the message carries the end of its log."""


class Process:
    """One Procfile process running in its own process group, its output in a log file."""

    def __init__(self, name: str, command: str, env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        # Appended to: a process started again after a kill writes after its predecessor.
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        # The venv's bin directory first, so the Procfile's gunicorn and celery are this install's.
        path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # From the Procfile's folder, as Procfile runners do: the web line names gunicorn.conf.py there.
        self.popen = subprocess.Popen(["bash", "-c", command], env={**env, "PATH": path}, cwd=PROCFILE.parent,
                                      stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def log(self) -> str:
        """What this process has written so far."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once."""
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM the process group, as Heroku does; SIGKILL what is left after ``timeout``."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait()
        self._log.close()


class DevStack:
    """Simulator + scenario + Baton's web and worker processes.

    time_scale: how fast simulated timeouts run (0.05 turns a 120 s reservation timeout into 6 s).
    events: how TaskRouter's events reach Baton: ``callback``, ``streams`` (an Event Streams sink) or ``both``.
    """

    def __init__(self, redis_url: str, time_scale: float = 1.0, web_port: int | None = None,
                 extra_env: Mapping[str, str] | None = None, log_dir: Path | None = None, events: str = "callback"):
        self.redis_url = redis_url
        self.time_scale = time_scale
        self.events = events
        self.web_port = web_port or free_port()
        self.extra_env = dict(extra_env or {})
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="baton-stack-"))
        self.simulator: Simulator | None = None
        self.scenario: Scenario | None = None
        self.processes: dict[str, Process] = {}

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def environment(self) -> dict[str, str]:
        """The environment Baton's processes get: the deployment contract of docs/contracts.md §3.3."""
        assert self.scenario is not None and self.simulator is not None
        env = {name: value for name, value in os.environ.items() if not name.startswith(("TWILIO_", "REDIS_"))}
        env.update(self.scenario.baton_environment(self.simulator.url, public_base_url=self.web_url))
        # An idle worker still waits out its whole soft shutdown; a short one keeps Ctrl-C quick.
        env.update(REDIS_URL=self.redis_url, PORT=str(self.web_port), WEB_CONCURRENCY="2",
                   CELERY_CONCURRENCY="2", PYTHONUNBUFFERED="1", WORKER_SOFT_SHUTDOWN_S="1",
                   # This stack's own: the web wipes it at boot, which must not touch another stack's.
                   PROMETHEUS_MULTIPROC_DIR=str(self.log_dir / "metrics"))
        env.update(self.extra_env)
        return env

    def start(self, processes: tuple[str, ...] = ("web", "worker", "beat"), timeout: float = 30.0) -> "DevStack":
        self.simulator = Simulator(time_scale=self.time_scale)
        self.simulator.serve()
        self.scenario = build_default_scenario(self.simulator)
        for name in processes:
            self.launch(name, timeout)
        # Only now: events sent before Baton listens would be lost, as they would with Twilio.
        connect_baton(self.simulator, self.scenario, self.web_url, self.events)
        return self

    def launch(self, name: str, timeout: float = 30.0) -> Process:
        """Start the Procfile process ``name`` (again, after a kill) and wait until it is ready."""
        process = self.processes[name] = Process(name, read_procfile()[name], self.environment(), self.log_dir)
        deadline = time.monotonic() + timeout
        if name == "web":
            self._wait(self._web_ready, name, deadline)
        elif name == "worker":
            self._wait(lambda: " ready." in process.log(), name, deadline)
        return process

    def kill(self, name: str) -> None:
        """SIGKILL a process's whole group, as a crashed dyno would go."""
        self.processes.pop(name).kill()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.processes.clear()
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None

    def __enter__(self) -> "DevStack":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _web_ready(self) -> bool:
        try:
            return requests.get(f"{self.web_url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _wait(self, ready, name: str, deadline: float) -> None:
        process = self.processes[name]
        while not ready():
            if not process.alive() or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"{name} did not become ready; its log ({process.log_path}):\n{process.log_tail()}")
            time.sleep(0.1)

