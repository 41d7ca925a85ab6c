"""The simulator's HTTP/1.1 server: persistent connections, dropped ones, and answers framed whatever the app does."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from simulator.httpd import KeepAliveServer


def local_ports(session: requests.Session) -> list[int | None]:
    """The local port of the connection of each answer ``session`` gets from now on (None: closed with the answer)."""
    ports: list[int | None] = []

    def record(response: requests.Response, **kwargs) -> None:
        # Before the body is read, the answer still holds its connection, unless it came with Connection: close.
        sock = response.raw.connection.sock
        ports.append(None if sock is None else sock.getsockname()[1])

    session.hooks["response"].append(record)
    return ports


@pytest.fixture
def serve():
    """Serves a WSGI app on a free port; returns its base URL."""
    servers: list[KeepAliveServer] = []

    def start(app) -> str:
        server = KeepAliveServer(("127.0.0.1", 0), app)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_baton_gateway_reuses_one_connection(sim, client, world):
    """Requests of Baton's twilio client (its gateway's transport) go over one kept connection."""
    ports = local_ports(client.http_client.session)
    workers = client.taskrouter.v1.workspaces(world.workspace_sid).workers
    assert {worker.sid for worker in workers.list()} == {world.alice, world.bob}
    attributes = '{"contact_uri": "client:alice", "note": "kept"}'
    workers(world.alice).update(attributes=attributes)
    assert workers(world.alice).fetch().attributes == attributes

    assert len(ports) == 3 and len(set(ports)) == 1 and None not in ports


def test_drop_fault_fails_the_request_and_the_next_one_connects_again(sim, api, world):
    """A dropped request on a kept connection is a ConnectionError; the next request is answered on a new one."""
    ports = local_ports(api.session)
    path = f"/v1/Workspaces/{world.workspace_sid}/Workers"
    assert [api.get("taskrouter", path).status_code for _ in range(2)] == [200, 200]
    sim.faults.add(method="GET", path="/Workers", kind="drop", times=1)

    with pytest.raises(requests.ConnectionError):
        api.get("taskrouter", path)
    assert api.get("taskrouter", path).status_code == 200

    kept, after_drop = ports[:2], ports[2]
    assert kept[0] == kept[1] != after_drop and None not in ports
    assert [entry.status for entry in sim.requests.find("GET", "/Workers")] == [200, 200, None, 200]


def test_stop_closes_kept_connections(sim):
    """Once the simulator stops, a connection it kept open answers nothing more."""
    session = requests.Session()
    assert session.get(f"{sim.url}/_sim/health").status_code == 200

    sim.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(f"{sim.url}/_sim/health", timeout=5)


def test_answer_without_content_length_is_framed_and_the_connection_kept(serve):
    """An answer the app streams without a Content-Length arrives whole, and the connection serves the next."""

    def streaming(environ, start_response) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first half, "
        yield environ["PATH_INFO"].encode()

    url = serve(streaming)
    session = requests.Session()
    ports = local_ports(session)

    answers = [session.get(f"{url}/{n}") for n in range(2)]

    assert [answer.text for answer in answers] == ["first half, /0", "first half, /1"]
    assert answers[0].headers["Content-Length"] == str(len("first half, /0"))
    assert len(ports) == 2 and len(set(ports)) == 1 and None not in ports


def test_unread_body_is_not_taken_for_the_next_request(serve):
    """A request body the app never reads does not put the connection out of step."""

    def ignoring_body(environ, start_response) -> list[bytes]:
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [environ["REQUEST_METHOD"].encode()]

    url = serve(ignoring_body)
    session = requests.Session()
    ports = local_ports(session)

    posted = session.post(url, data={"Attributes": "x" * 10_000})
    fetched = session.get(url, timeout=5)

    assert (posted.status_code, posted.text, fetched.text) == (201, "POST", "GET")
    assert len(ports) == 2 and len(set(ports)) == 1 and None not in ports


def test_no_content_answer_has_no_body(serve):
    """A 204 goes out without a body or a length, and the connection serves the next request."""

    def no_content(environ, start_response) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    url = serve(no_content)
    session = requests.Session()
    ports = local_ports(session)

    answers = [session.delete(url, timeout=5) for _ in range(2)]

    assert [(answer.status_code, answer.content) for answer in answers] == [(204, b""), (204, b"")]
    assert "Content-Length" not in answers[0].headers
    assert len(ports) == 2 and len(set(ports)) == 1 and None not in ports
