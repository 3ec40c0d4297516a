"""The registry's webhook endpoint on a real socket: a delivery sent again does nothing,
and headers that are not what MLflow sends get 401, never an error of the server's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.testbed.process import free_port

SECRET = "webhook-test-secret"
MOVED = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"name": "iris", "alias": "champion", "version": "2"},
    }
).encode()


@pytest.fixture
def endpoint():
    """The endpoint served on loopback; its URL and the aliases it was told moved."""
    from aiohttp import web

    from modelplane.operator import webhook

    moved: list[tuple[str, str]] = []
    loop = asyncio.new_event_loop()
    port = free_port()
    runner = web.AppRunner(webhook.application(SECRET, lambda model, alias: moved.append((model, alias)) or 1))

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"http://127.0.0.1:{port}{webhook.PATH}", moved
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _deliver(url: str, delivery: str, stamp: str, body: bytes = MOVED) -> tuple[int, dict]:
    signature = base64.b64encode(
        hmac.new(SECRET.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": f"v1,{signature}",
    }
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_delivery_sent_again_is_ignored(endpoint):
    url, moved = endpoint
    stamp = str(int(time.time()))

    first = _deliver(url, "delivery-1", stamp)
    again = _deliver(url, "delivery-1", stamp)
    another = _deliver(url, "delivery-2", stamp)

    assert first == (200, {"woken": 1}) and another == (200, {"woken": 1})
    assert again == (200, {"ignored": "this delivery was received before"})
    assert moved == [("iris", "champion"), ("iris", "champion")]


@pytest.mark.parametrize(
    "stamp", ["9" * 5000, "17²", "-1", ""], ids=["5000-digits", "superscript-digit", "negative", "empty"]
)
def test_a_timestamp_that_is_not_one_is_refused(endpoint, stamp: str):
    url, moved = endpoint

    status, answer = _deliver(url, "delivery-1", stamp)

    assert (status, answer) == (401, {"error": "bad or missing X-MLflow-Signature"})
    assert moved == []


def test_a_signed_alias_event_without_a_model_is_refused(endpoint):
    url, moved = endpoint
    event = json.dumps({"entity": "model_version_alias", "action": "created", "data": {"alias": ["x"]}}).encode()

    assert _deliver(url, "delivery-1", str(int(time.time())), event)[0] == 400
    assert moved == []


def _headers(body: bytes, stamp: int, delivery: str = "delivery-1", secret: str = SECRET) -> dict[str, str]:
    signature = base64.b64encode(
        hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": str(stamp), "X-MLflow-Signature": f"v1,{signature}"}


NOW = 1_800_000_000


@pytest.mark.parametrize("age", [0, 300, -300], ids=["now", "at-the-window's-end", "at-the-window's-start-ahead"])
def test_a_delivery_signed_within_the_replay_window_is_valid(age: int):
    from modelplane.operator.webhook import signature_valid

    assert signature_valid(SECRET, _headers(MOVED, NOW - age), MOVED, NOW)


@pytest.mark.parametrize("age", [301, -301, NOW], ids=["older", "from-the-future", "the-epoch"])
def test_a_delivery_signed_outside_the_replay_window_is_refused(age: int):
    from modelplane.operator.webhook import signature_valid

    assert not signature_valid(SECRET, _headers(MOVED, NOW - age), MOVED, NOW)


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (_headers(MOVED, NOW, secret="another-secret"), MOVED),
        (_headers(MOVED, NOW), MOVED.replace(b'"version": "2"', b'"version": "3"')),
        (_headers(MOVED, NOW, delivery="delivery-2") | {"X-MLflow-Delivery-Id": "delivery-1"}, MOVED),
        (_headers(MOVED, NOW) | {"X-MLflow-Timestamp": str(NOW + 1)}, MOVED),
        (_headers(MOVED, NOW) | {"X-MLflow-Signature": _headers(MOVED, NOW)["X-MLflow-Signature"][3:]}, MOVED),
        (_headers(MOVED, NOW) | {"X-MLflow-Signature": "v2" + _headers(MOVED, NOW)["X-MLflow-Signature"][2:]}, MOVED),
        (_without(_headers(MOVED, NOW), "X-MLflow-Signature"), MOVED),
        (_without(_headers(MOVED, NOW), "X-MLflow-Delivery-Id"), MOVED),
        (_headers(MOVED, NOW, delivery="") | {"X-MLflow-Delivery-Id": ""}, MOVED),
    ],
    ids=[
        "another-secret",
        "body-changed",
        "delivery-id-changed",
        "timestamp-changed",
        "no-version",
        "version-2",
        "no-signature",
        "no-delivery-id",
        "empty-delivery-id",
    ],
)
def test_a_signature_that_does_not_cover_what_was_sent_is_refused(headers: dict[str, str], body: bytes):
    from modelplane.operator.webhook import signature_valid

    assert not signature_valid(SECRET, headers, body, NOW)


def test_a_delivery_id_is_remembered_for_the_replay_window_only():
    from modelplane.operator.webhook import REPLAY_WINDOW_SECONDS, _SeenDeliveries

    seen = _SeenDeliveries()

    assert seen.first_time("delivery-1", NOW)
    assert not seen.first_time("delivery-1", NOW + REPLAY_WINDOW_SECONDS)
    # By now a replay of it is refused for its timestamp: the id need not be kept.
    assert seen.first_time("delivery-1", NOW + REPLAY_WINDOW_SECONDS + 1)


@pytest.mark.parametrize(
    ("entity", "action"),
    [("model_version_alias", "deleted"), ("model_version", "created"), ("registered_model", "created")],
)
def test_a_signed_event_other_than_an_alias_set_is_ignored(endpoint, entity: str, action: str):
    url, moved = endpoint
    event = json.dumps({"entity": entity, "action": action, "data": {"name": "iris", "alias": "champion"}}).encode()

    answer = _deliver(url, "delivery-1", str(int(time.time())), event)

    assert answer == (200, {"ignored": f"{entity}.{action}"})
    assert moved == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"entity": "model_version_alias"}'], ids=["not-json", "a-list", "no-action"]
)
def test_a_signed_body_that_is_not_a_delivery_is_refused(endpoint, body: bytes):
    url, moved = endpoint

    answer = _deliver(url, "delivery-1", str(int(time.time())), body)

    assert answer == (400, {"error": "not an MLflow webhook delivery"})
    assert moved == []
