"""`modelplane stream` against real brokers: every event scored once with its key and id,
poison events dead-lettered while the rest flows, nothing lost when the consumer is killed,
and SIGTERM drains."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import show_logs_on_failure
from tests.serving.server import MODELPLANE, metric
from tests.serving.streams import StreamClient
from tests.testbed.brokers import Broker
from tests.testbed.process import Component, free_port
from tests.waiting import eventually

pytestmark = [pytest.mark.registry, pytest.mark.brokers]
BATCH = 50
# Far more events than a consumer scores while the test sees its first batches written, so
# a signal sent then lands on a consumer with work still in hand.
BACKLOG = 10_000
TRANSPORTS = ["kafka", "redis", "nats"]


@pytest.fixture(params=TRANSPORTS)
def streams(request: pytest.FixtureRequest) -> StreamClient:
    broker: Broker = request.getfixturevalue(f"{request.param}_broker")
    prefix = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-")
    client = StreamClient(broker, prefix)
    client.create("in", "out", "dead")
    return client


class Consumer:
    """`modelplane stream` as a local process, as the pod runs it."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        env: dict[str, str],
        log_dir: Path,
        streams: StreamClient,
        name: str = "consumer-0",
    ):
        self.metrics = free_port()
        self.env = {
            **env,
            "MODELPLANE_SOURCE": streams.url("in"),
            "MODELPLANE_SINK": streams.url("out"),
            "MODELPLANE_DEAD_LETTER": streams.url("dead"),
            "MODELPLANE_CONSUMER_GROUP": "scorers",
            "MODELPLANE_CONSUMER_NAME": name,
            "MODELPLANE_BATCH_SIZE": str(BATCH),
            "MODELPLANE_METRICS_HOST": "127.0.0.1",
            "MODELPLANE_METRICS_PORT": str(self.metrics),
        }
        self.process = Component(f"stream-{streams.prefix}-{name}", [MODELPLANE, "stream"], log_dir, env=self.env)
        show_logs_on_failure(request.config, [self.process])

    def start(self) -> Consumer:
        self.process.start()
        self.process.wait_until(lambda: self.get("/readyz").startswith("ok"), timeout=120)
        return self

    def get(self, path: str) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}{path}", timeout=5).read().decode()

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def written(self) -> float:
        """Predictions written to the sink so far, by the consumer's own count."""
        return metric(f"http://127.0.0.1:{self.metrics}", "modelplane_stream_produced_total")

    def signal_while_scoring(self, signum: int) -> None:
        """Starts the consumer on a backlog and sends `signum` as soon as its first batches
        are written, polled closely: the signal lands while it works through the backlog."""
        self.process.start()
        deadline = time.monotonic() + 120
        while not self._has_written(2 * BATCH):
            assert self.process.process.poll() is None, f"exited with code {self.process.process.returncode}"
            assert time.monotonic() < deadline, "wrote nothing in 120 s"
            time.sleep(0.01)
        self.signal(signum)

    def _has_written(self, count: int) -> bool:
        try:
            return self.written() >= count
        except OSError:  # its metrics server is not listening yet
            return False


@pytest.fixture
def consumer(request, server_env: dict[str, str], testbed_dir: Path, streams: StreamClient):
    started = Consumer(request, server_env, testbed_dir / "logs", streams)
    yield started
    started.process.stop()


def _rows(iris_features, count: int) -> list[dict]:
    rows = iris_features.to_dict(orient="records")
    return [rows[index % len(rows)] for index in range(count)]


def _events(iris_features, count: int) -> list[tuple[str, bytes]]:
    return [
        (f"key-{index}", json.dumps({"id": index, **row}).encode())
        for index, row in enumerate(_rows(iris_features, count))
    ]


def test_every_event_is_scored_with_its_key_and_id(consumer: Consumer, streams: StreamClient, iris_features, reference):
    streams.produce("in", _events(iris_features, 300))
    # A list of records in one event gets one output event holding a list.
    pair = [{"id": "a", **_rows(iris_features, 2)[0]}, {"id": "b", **_rows(iris_features, 2)[1]}]
    streams.produce("in", [(None, json.dumps(pair).encode())])
    consumer.start()

    outputs = eventually(
        lambda: (found := streams.read("out")) and len(found) >= 301 and found, timeout=60, what="301 outputs"
    )
    singles = {
        value["id"]: (key, value["prediction"], headers) for key, value, headers in outputs if isinstance(value, dict)
    }
    assert sorted(singles) == list(range(300))
    for index, (key, predicted, headers) in singles.items():
        assert key == f"key-{index}"
        assert predicted == reference[index % len(reference)]
        assert headers["model"] == "iris" and headers["model_version"] == "1"
    (listed,) = [value for _, value, _ in outputs if isinstance(value, list)]
    assert listed == [{"id": "a", "prediction": reference[0]}, {"id": "b", "prediction": reference[1]}]
    metrics = consumer.get("/metrics")
    assert re.search(r'modelplane_stream_produced_total\{model="iris",version="1"\} 301', metrics), metrics
    # Each event's time from the broker to its prediction, by the broker's own timestamp.
    assert re.search(r'modelplane_stream_end_to_end_seconds_count\{model="iris",version="1"\} 301', metrics), metrics


def test_poison_events_are_dead_lettered_and_the_rest_flows(consumer: Consumer, streams: StreamClient, iris_features):
    good = _events(iris_features, 20)
    poison = [
        ("bad-json", b"{not json"),
        ("bad-column", json.dumps({"id": 99, "petal colour": "red"}).encode()),
        ("bad-type", json.dumps({"id": 98, **dict.fromkeys(iris_features.columns, "x")}).encode()),
    ]
    streams.produce("in", good[:10] + poison + good[10:])
    consumer.start()

    eventually(
        lambda: len(streams.read("out")) >= 20 and len(streams.read("dead")) >= 3,
        timeout=60,
        what="20 outputs and 3 dead letters",
    )
    assert sorted(value["id"] for _, value, _ in streams.read("out")) == list(range(20))
    letters = {key: value for key, value, _ in streams.read("dead")}
    assert set(letters) == {"bad-json", "bad-column", "bad-type"}
    assert letters["bad-json"]["payload"] == "{not json" and "not valid JSON" in letters["bad-json"]["error"]
    assert "petal colour" in letters["bad-column"]["error"]
    # Refused as input before any predict call: no attempt at scoring it was spent.
    assert letters["bad-type"]["origin"] and letters["bad-type"]["attempts"] == 0
    assert letters["bad-type"]["error"].startswith("invalid event"), letters["bad-type"]["error"]


def test_a_killed_consumer_loses_nothing_and_repeats_at_most_a_batch(
    consumer: Consumer, streams: StreamClient, iris_features
):
    streams.produce("in", _events(iris_features, BACKLOG))
    consumer.signal_while_scoring(signal.SIGKILL)
    consumer.process.process.wait()
    written = len(streams.read("out"))
    assert written < BACKLOG, f"all {BACKLOG} events were scored before the kill: it landed on an idle consumer"

    consumer.start()
    outputs = eventually(
        lambda: (found := streams.read("out")) and len({v["id"] for _, v, _ in found}) == BACKLOG and found,
        timeout=120,
        what="an output for every input",
    )
    assert len(outputs) - BACKLOG <= BATCH, f"{len(outputs) - BACKLOG} duplicates, more than one batch of {BATCH}"


def test_sigterm_drains_and_exits_zero(consumer: Consumer, streams: StreamClient, iris_features):
    streams.produce("in", _events(iris_features, BACKLOG))
    consumer.signal_while_scoring(signal.SIGTERM)
    assert consumer.process.process.wait(timeout=30) == 0
    written = len(streams.read("out"))
    assert written < BACKLOG, f"all {BACKLOG} events were scored before SIGTERM: there was nothing to drain"

    # Whatever was written before the exit was acknowledged: a new run repeats none of it.
    consumer.start()
    outputs = eventually(
        lambda: (found := streams.read("out")) and len(found) >= BACKLOG and found,
        timeout=120,
        what="the rest scored after the restart",
    )
    assert len(outputs) == BACKLOG, f"{len(outputs) - BACKLOG} repeated after a drained stop ({written} before it)"


def test_a_redis_consumer_claims_what_a_dead_one_left_pending(
    request, server_env: dict[str, str], testbed_dir: Path, redis_broker: Broker, iris_features
):
    import redis

    streams = StreamClient(redis_broker, "claimed")
    streams.produce("in", _events(iris_features, BACKLOG))
    dead = Consumer(request, server_env, testbed_dir / "logs", streams)
    try:
        dead.signal_while_scoring(signal.SIGKILL)
    finally:
        dead.process.stop()

    def pending() -> dict[str, int]:
        """Entries delivered and not yet acknowledged, by consumer."""
        client = redis.Redis(host=redis_broker.host, port=redis_broker.port, decode_responses=True)
        summary = client.xpending(streams.name("in"), "scorers")
        client.close()
        return {each["name"]: each["pending"] for each in summary["consumers"]}

    left_pending = pending()
    assert left_pending.get("consumer-0", 0) > 0, f"the kill left nothing pending: {left_pending}"

    # Another pod of the group, under its own name: the dead one's entries are claimed
    # once idle (3 s in this test's URL), not left pending for ever.
    successor = Consumer(request, server_env, testbed_dir / "logs", streams, name="consumer-1").start()
    try:
        eventually(
            lambda: len({value["id"] for _, value, _ in streams.read("out")}) == BACKLOG,
            timeout=90,
            what="an output for every input, the dead consumer's pending ones included",
        )
        eventually(lambda: not pending(), timeout=30, what="every entry acknowledged, the claimed ones included")
    finally:
        successor.process.stop()


def test_an_event_whose_scoring_keeps_failing_is_dead_lettered_after_its_attempts(
    request,
    server_env: dict[str, str],
    testbed_dir: Path,
    redis_broker: Broker,
    registry,
):
    streams = StreamClient(redis_broker, "failing")
    values = [1.0, 2.0, -1.0, 3.0]
    streams.produce("in", [(f"key-{n}", json.dumps({"id": n, "x": x}).encode()) for n, x in enumerate(values)])
    env = {**server_env, "MODELPLANE_MODEL": f"models:/{registry.models.picky}/1", "MODELPLANE_ALLOW_PICKLE": "true"}
    consumer = Consumer(request, env, testbed_dir / "logs", streams).start()
    try:
        eventually(
            lambda: len(streams.read("out")) == 3 and len(streams.read("dead")) == 1,
            timeout=60,
            what="3 predictions and 1 dead letter",
        )
    finally:
        consumer.process.stop()
    assert {value["id"]: value["prediction"] for _, value, _ in streams.read("out")} == {0: 2.0, 1: 4.0, 3: 6.0}
    ((key, letter, _),) = streams.read("dead")
    assert key == "key-2" and letter["attempts"] == 3
    assert "scoring failed 3 times" in letter["error"] and "x must not be negative" in letter["error"]
    assert letter["origin"]["stream"] == "failing-in"


def test_image_events_are_scored_as_the_model_s_binary_column(
    request, server_env: dict[str, str], testbed_dir: Path, streams: StreamClient, registry
):
    """A scan sent as its bytes with an image content type, as a camera or scanner sends it,
    is scored like the same scan sent in JSON as base64; bytes that are not an image, and a
    content type that is neither JSON nor bytes, are dead-lettered with the reason."""
    import base64

    import mlflow.pyfunc
    import pandas as pd
    from sklearn.datasets import load_digits

    from tests.testbed.registry import digit_scan

    model_uri = f"models:/{registry.models.scans}@champion"
    images, _ = load_digits(return_X_y=True)
    scans = [digit_scan(images[index]) for index in range(5)]
    expected = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"image": scans})).to_dict(orient="records")
    streams.produce("in", [(f"scan-{index}.png", scan) for index, scan in enumerate(scans)], content_type="image/png")
    streams.produce("in", [("not-an-image", b"GIF89a not really")], content_type="image/gif")
    streams.produce("in", [("as-text", b"hello")], content_type="text/plain")
    as_json = {"id": "in-json", "image": base64.b64encode(scans[0]).decode()}
    streams.produce("in", [("json", json.dumps(as_json).encode())], content_type="application/json")
    consumer = Consumer(request, {**server_env, "MODELPLANE_MODEL": model_uri}, testbed_dir / "logs", streams).start()
    try:
        eventually(
            lambda: len(streams.read("out")) == 6 and len(streams.read("dead")) == 2,
            timeout=60,
            what="6 predictions and 2 dead letters",
        )
    finally:
        consumer.process.stop()
    predictions = {value["id"]: value["prediction"] for _, value, _ in streams.read("out")}
    assert set(predictions) == {*(f"scan-{index}.png" for index in range(5)), "in-json"}
    for index, wanted in enumerate(expected):
        assert predictions[f"scan-{index}.png"]["class"] == wanted["class"]
        assert predictions[f"scan-{index}.png"]["probability"] == pytest.approx(wanted["probability"])
    assert predictions["in-json"] == predictions["scan-0.png"]
    letters = {key: value for key, value, _ in streams.read("dead")}
    assert "PNG or JPEG" in letters["not-an-image"]["error"], letters["not-an-image"]
    assert "content-type 'text/plain' is not read" in letters["as-text"]["error"], letters["as-text"]
