"""Online mode on the real node: the serving image, run under the restricted policy,
passes its probes and answers what the model answers in-process."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests

from tests.conftest import Registry
from tests.operator.process import Operator
from tests.operator.resources import apply, manifest, ready
from tests.testbed.cluster import ControlPlane
from tests.testbed.node import Node
from tests.waiting import eventually

pytestmark = pytest.mark.node
PORT = 8080


def _pods(cluster: ControlPlane, namespace: str, name: str) -> list[dict]:
    listed = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"modelplane.io/deployment={name}", "-o", "json")
    return json.loads(listed.stdout)["items"]


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _seconds_to_ready(pod: dict) -> float:
    """From the serving container's start to the pod's Ready condition."""
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    became_ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    return (_when(became_ready) - _when(started)).total_seconds()


def test_online_pods_pass_their_probes_and_answer_as_the_model_does_in_process(
    node_operator: Operator, node: Node, registry: Registry, cluster: ControlPlane, restricted_namespace: str,
    capsys,
):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    namespace, name = restricted_namespace, "iris"
    placement = node.placement
    apply(cluster, namespace, manifest(name, online={"replicas": 2, "port": PORT},
                                       nodeSelector=placement["nodeSelector"], tolerations=placement["tolerations"]))

    status = eventually(lambda: ready(cluster, namespace, name), timeout=240, what="the pods on the real node Ready")

    pods = _pods(cluster, namespace, name)
    assert {pod["spec"]["nodeName"] for pod in pods} == {node.name}
    assert len(pods) == 2
    features, _ = iris_features()
    rows = features.iloc[:10]
    in_process = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}/{registry.models.champion_version}").predict(rows)
    for pod in pods:
        answer = requests.post(f"http://{pod['status']['podIP']}:{PORT}/invocations",
                               json={"dataframe_records": rows.to_dict("records")}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": list(in_process)}
    assert status["modelVersion"] == registry.models.champion_version
    resident = max(node.pod_memory_bytes(pod["metadata"]["uid"]) for pod in pods) / 2**20
    with capsys.disabled():
        print(f"\nserving pods: container start to Ready {max(map(_seconds_to_ready, pods)):.1f} s; "
              f"resident memory at rest {resident:.0f} MiB")
