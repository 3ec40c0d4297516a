"""Adaptive batching as `modelplane serve` does it over HTTP: a lone request is scored alone,
and a request that fails the batch it shared is rescored alone, so it fails by itself
while its batch-mates get their answers. Which requests shared a predict call is read
from the server's histogram of requests per predict call."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Registry
from tests.serving.server import batching, metric
from tests.waiting import eventually

pytestmark = pytest.mark.registry

# The longest batch window the server takes: a forming batch waits this long for requests
# still on their way in, which a lone request must never do.
LONGEST_WINDOW_MS = "10000"


@pytest.fixture(scope="module")
def picky(serve_model, registry: Registry) -> str:
    """The model that doubles x and refuses any negative x, with the longest batch window."""
    return serve_model(f"models:/{registry.models.picky}/1", "--allow-pickle", "--max-batch-wait-ms", LONGEST_WINDOW_MS)


def _since(url: str, before: tuple[float, float, float]) -> tuple[float, float, float]:
    after = batching(url)
    return after[0] - before[0], after[1] - before[1], after[2] - before[2]


def _body(x: float) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["x"], "data": [[x]]}}).encode()


def test_a_lone_request_is_scored_in_a_predict_call_of_its_own(picky: str):
    # That it does not wait for the window is shown in dataplane/test_batcher.py, with a window of an
    # hour: the server takes at most 10 s, which only a time limit could tell from a slow answer.
    before = batching(picky)

    response = requests.post(
        picky + "/invocations", data=_body(3.0), headers={"Content-Type": "application/json"}, timeout=60
    )

    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [{"x": 6.0}]
    assert _since(picky, before) == (1, 1, 1)


def test_a_request_that_fails_its_batch_fails_alone_and_its_batch_mates_are_answered(picky: str):
    values = [1.0, 2.0, -1.0, 3.0, 4.0, 5.0]
    before = batching(picky)
    # Every request's headers first, so each is on its way in when the first body lands:
    # the batch that forms waits for them all (within its window), then leaves.
    held = [_send_headers(picky, len(_body(x))) for x in values]
    eventually(
        lambda: metric(picky, "modelplane_requests_in_flight") == len(values) + 1,  # the /metrics request too
        what="every request being read by the server",
    )
    for connection, x in zip(held, values, strict=True):
        connection.sendall(_body(x))
    answers = [_read_answer(connection) for connection in held]

    assert _since(picky, before) == (len(values), 1, 0), "the requests did not share one predict call"
    for x, (status, body) in zip(values, answers, strict=True):
        if x < 0:
            assert status == 422, body
            assert body["message"] == "the model cannot score this input: x must not be negative"
        else:
            assert status == 200, body
            assert body["predictions"] == [{"x": 2 * x}]


def _send_headers(url: str, length: int) -> socket.socket:
    address = urlsplit(url)
    connection = socket.create_connection((address.hostname, address.port), timeout=60)
    connection.sendall(
        (
            f"POST /invocations HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    return connection


def _read_answer(connection: socket.socket) -> tuple[int, dict]:
    with connection:
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, json.loads(response.read())
