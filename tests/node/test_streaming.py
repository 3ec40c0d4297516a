"""Streaming mode on the real node: the consumer pod reads events from Kafka and writes
each prediction with its key and id, and dead-letters what it cannot decode."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Registry
from tests.operator.process import Operator
from tests.operator.resources import apply, manifest, ready
from tests.serving.streams import StreamClient
from tests.testbed.brokers import Broker
from tests.testbed.cluster import ControlPlane
from tests.testbed.node import Node
from tests.waiting import eventually

pytestmark = pytest.mark.node


def test_a_streaming_pod_scores_every_event_and_dead_letters_the_poison(
    node_operator: Operator,
    node: Node,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
    pod_kafka: Broker,
):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    namespace, name = restricted_namespace, "iris-events"
    streams = StreamClient(pod_kafka, namespace)
    streams.create("in", "out", "dead")
    rows, _ = iris_features()
    streams.produce(
        "in",
        [
            (f"key-{index}", json.dumps({"id": index, **row}).encode())
            for index, row in enumerate(rows.to_dict("records"))
        ]
        + [("poison", b"{not json")],
    )
    streaming = {
        "source": streams.url("in"),
        "sink": streams.url("out"),
        "deadLetter": streams.url("dead"),
        "consumerGroup": f"{namespace}-scoring",
    }

    apply(cluster, namespace, manifest(name, mode="streaming", streaming=streaming, **node.placement))
    eventually(lambda: ready(cluster, namespace, name), timeout=240, what="the consumer Ready")
    outputs = eventually(
        lambda: (found := streams.read("out")) and len(found) >= len(rows) and found,
        timeout=120,
        what=f"{len(rows)} predictions",
    )

    expected = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}@champion").predict(rows)
    scored = {value["id"]: (key, value["prediction"]) for key, value, _ in outputs}
    assert scored == {index: (f"key-{index}", expected[index]) for index in range(len(rows))}
    (dead,) = eventually(lambda: streams.read("dead"), timeout=60, what="the poison event dead-lettered")
    assert dead[0] == "poison"
