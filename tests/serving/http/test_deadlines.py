"""Connections that send their request too slowly are closed, not held open for ever."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import show_logs_on_failure
from tests.serving.server import metric, start_server

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def impatient_server(request: pytest.FixtureRequest, server_env: dict[str, str], testbed_dir: Path) -> str:
    env = {**server_env, "MODELPLANE_HEADER_TIMEOUT_SECONDS": "1", "MODELPLANE_BODY_TIMEOUT_SECONDS": "2"}
    process, url = start_server("serve-impatient", env, testbed_dir / "logs")
    show_logs_on_failure(request.config, [process])
    yield url
    process.stop()


def _connect(url: str) -> socket.socket:
    address = urlsplit(url)
    # Far longer than the server's deadlines: a server that holds the connection fails
    # the test with a timeout here instead of hanging it.
    return socket.create_connection((address.hostname, address.port), timeout=60)


def _read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed with bytes of ours still unread: what arrived is the answer
        pass
    return received


def _count(url: str, route: str, code: str) -> float:
    return metric(url, "modelplane_requests_total", route=route, code=code)


def test_a_connection_opened_and_never_used_is_closed(impatient_server: str):
    with _connect(impatient_server) as connection:
        assert _read_until_closed(connection) == b""


@pytest.mark.parametrize(
    "sent",
    [b"POST /invocations HTTP/1.1\r\nHost: model\r\nContent-Type: app", b"\r\n"],
    ids=["half the headers", "a blank line"],
)
def test_a_request_that_does_not_finish_its_headers_is_closed_with_408(impatient_server: str, sent: bytes):
    with _connect(impatient_server) as connection:
        # After one whole request, so the deadline holds on a kept-alive connection too.
        connection.sendall(b"GET /readyz HTTP/1.1\r\nHost: model\r\n\r\n")
        assert _one_response(connection).startswith(b"HTTP/1.1 200 ")
        connection.sendall(sent)

        answer = _read_until_closed(connection)

    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_headers_past_the_limit_get_431_and_the_connection_closed(impatient_server: str):
    with _connect(impatient_server) as connection:
        # Past the 64 KiB limit, and never ending: the server must stop reading.
        connection.sendall(b"GET /readyz HTTP/1.1\r\nHost: model\r\nX-Padding: " + b"x" * 70_000)

        answer = _read_until_closed(connection)

    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_body_that_stops_arriving_is_cut_off(impatient_server: str):
    before = _count(impatient_server, "/invocations", "408")
    with _connect(impatient_server) as connection:
        connection.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: model\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"dataframe_records": ['
        )

        assert _read_until_closed(connection) == b""

    assert _count(impatient_server, "/invocations", "408") == before + 1


def test_a_kept_alive_connection_serves_request_after_request(impatient_server: str):
    with _connect(impatient_server) as connection:
        for _ in range(3):
            connection.sendall(b"GET /readyz HTTP/1.1\r\nHost: model\r\n\r\n")
            answer = _one_response(connection)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok"), answer


def _one_response(connection: socket.socket) -> bytes:
    """One whole response of known length, however the bytes arrive."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body
