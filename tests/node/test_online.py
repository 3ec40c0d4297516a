"""Online mode on the real node: the serving image, run under the restricted policy,
passes its probes and answers what the model answers in-process."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.conftest import Registry
from tests.node.conftest import NodeImages
from tests.node.workloads import PORT, answers, pods_of, seconds_to_ready, service_url
from tests.operator.process import Operator
from tests.operator.resources import apply, condition, manifest, ready, status_of
from tests.serving.server import metric
from tests.testbed.cluster import ControlPlane, is_ready
from tests.testbed.node import Node
from tests.waiting import eventually

pytestmark = pytest.mark.node


def test_online_pods_pass_their_probes_and_answer_as_the_model_does_in_process(
    node_operator: Operator,
    node: Node,
    node_images: NodeImages,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
    capsys,
):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    namespace, name = restricted_namespace, "iris"
    apply(cluster, namespace, manifest(name, online={"replicas": 2, "port": PORT}, **node.placement))

    status = eventually(lambda: ready(cluster, namespace, name), timeout=240, what="the pods on the real node Ready")

    pods = pods_of(cluster, namespace, name)
    assert {pod["spec"]["nodeName"] for pod in pods} == {node.name}
    assert len(pods) == 2
    features, _ = iris_features()
    rows = features.iloc[:10]
    in_process = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}/{registry.models.champion_version}").predict(
        rows
    )
    for pod in pods:
        answer = requests.post(
            f"http://{pod['status']['podIP']}:{PORT}/invocations",
            json={"dataframe_records": rows.to_dict("records")},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": list(in_process)}
    assert status["modelVersion"] == registry.models.champion_version
    resident = max(node.pod_memory_bytes(pod["metadata"]["uid"]) for pod in pods) / 2**20
    with capsys.disabled():
        print(
            f"\nserving image {node_images.serving.size_mb:.0f} MB; its pods: container start to Ready "
            f"{max(map(seconds_to_ready, pods)):.1f} s, resident memory at rest {resident:.0f} MiB"
        )

    # A body this large is decoded in a helper process, which must start under the
    # restricted policy and a read-only root file system as well.
    many = [rows.to_dict("records")[index % len(rows)] for index in range(15_000)]
    large = requests.post(
        f"http://{pods[0]['status']['podIP']}:{PORT}/invocations", json={"dataframe_records": many}, timeout=120
    )
    assert large.status_code == 200, large.text
    assert large.json()["predictions"] == [list(in_process)[index % len(rows)] for index in range(15_000)]
    assert metric(f"http://{pods[0]['status']['podIP']}:{PORT}", "modelplane_bodies_decoded_aside_total") == 1, (
        "the large body was not decoded in the helper process"
    )


def test_a_model_refused_at_load_is_reported_with_why(
    node_operator: Operator,
    node: Node,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
):
    namespace, name = restricted_namespace, "pickled"
    pickled = {"name": registry.models.custom, "version": registry.models.custom_version}
    apply(cluster, namespace, manifest(name, model=pickled, online={"port": PORT}, **node.placement))

    refused = eventually(
        lambda: (
            (found := condition(status_of(cluster, namespace, name), "Ready")).get("reason") == "ContainerFailed"
            and found
        ),
        timeout=240,
        what="Ready=False with the container's reason",
    )

    assert refused["status"] == "False"
    assert refused["message"].startswith(
        f"models:/{registry.models.custom}/{registry.models.custom_version} is not served without --allow-pickle"
    )


class RequestLoop(threading.Thread):
    """Asks a URL for predictions on a new connection each time, as many clients do,
    until stopped or `limit` seconds pass; keeps every failure."""

    def __init__(self, url: str, body: dict, limit: float = 300):
        super().__init__(daemon=True)
        self.url, self.body, self.limit = url, body, limit
        self.answered_at: list[float] = []
        self.failures: list[str] = []
        self._stopping = threading.Event()

    @property
    def answered(self) -> int:
        return len(self.answered_at)

    def longest_silence(self) -> float:
        """The longest time between two answers, in seconds."""
        return max(later - earlier for earlier, later in zip(self.answered_at, self.answered_at[1:], strict=False))

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                answer = requests.post(self.url, json=self.body, timeout=10)
                if answer.status_code == 200:
                    self.answered_at.append(time.monotonic())
                else:
                    self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def _behind_service(cluster: ControlPlane, namespace: str, name: str, node: Node, **spec) -> str:
    """Two online replicas on the node, Ready and routed by their Service; its URL."""
    apply(cluster, namespace, manifest(name, online={"replicas": 2, "port": PORT}, **spec, **node.placement))
    eventually(lambda: ready(cluster, namespace, name), timeout=240, what="the pods Ready")
    service = service_url(cluster, namespace, name)
    eventually(lambda: answers(f"{service}/version"), timeout=30, what="the Service routing")
    return service


def _predictions_loop(service: str) -> RequestLoop:
    from modelplane.demo import iris_features

    features, _ = iris_features()
    return RequestLoop(f"{service}/invocations", {"dataframe_records": features.iloc[:3].to_dict("records")})


def _register_two_versions(registry: Registry, name: str) -> None:
    """`name` version 1 is iris version 1 and version 2 is iris version 2, @champion on 1."""
    import mlflow

    client = mlflow.MlflowClient(registry.tracking_uri)
    client.create_registered_model(name)
    for source_version in (registry.models.champion_version, registry.models.challenger_version):
        iris = client.get_model_version(registry.models.iris, source_version)
        client.create_model_version(name, iris.source, iris.run_id, model_id=iris.source.removeprefix("models:/"))
    client.set_registered_model_alias(name, "champion", "1")


def test_a_moved_alias_replaces_the_pods_with_no_failed_request(
    node_operator: Operator,
    node: Node,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
):
    namespace, name = restricted_namespace, "iris"
    model = f"promoted-{namespace}"
    _register_two_versions(registry, model)
    service = _behind_service(
        cluster, namespace, name, node, model={"name": model, "alias": "champion"}, rollout={"pollIntervalSeconds": 5}
    )

    loop = _predictions_loop(service)
    loop.start()
    try:
        import mlflow

        mlflow.MlflowClient(registry.tracking_uri).set_registered_model_alias(model, "champion", "2")
        eventually(
            lambda: ready(cluster, namespace, name) and _versions_serving(cluster, namespace, name) == {"2"},
            timeout=300,
            what="every pod serving version 2",
        )
        time.sleep(3)  # requests on through the Service once the old pods are gone
    finally:
        loop.stop()

    assert loop.failures == [], f"{len(loop.failures)} of {loop.answered + len(loop.failures)} requests failed"
    assert loop.answered > 50
    assert {requests.get(f"{service}/version", timeout=5).json()["model_version"] for _ in range(10)} == {"2"}


def _versions_serving(cluster: ControlPlane, namespace: str, name: str) -> set[str]:
    """The model versions of the pods that exist, terminating ones included."""
    return {pod["metadata"]["labels"]["modelplane.io/model-version"] for pod in pods_of(cluster, namespace, name)}


def test_a_killed_pod_is_replaced_and_the_service_keeps_answering(
    node_operator: Operator,
    node: Node,
    cluster: ControlPlane,
    restricted_namespace: str,
):
    namespace, name = restricted_namespace, "iris"
    service = _behind_service(cluster, namespace, name, node)
    victim = pods_of(cluster, namespace, name)[0]["metadata"]["name"]

    loop = _predictions_loop(service)
    loop.start()
    try:
        cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        eventually(lambda: _replaced(cluster, namespace, name, victim), timeout=180, what="a Ready replacement")
    finally:
        loop.stop()

    assert loop.failures == [], f"{len(loop.failures)} of {loop.answered + len(loop.failures)} requests failed"
    assert loop.answered > 20


def _replaced(cluster: ControlPlane, namespace: str, name: str, victim: str) -> bool:
    pods = pods_of(cluster, namespace, name)
    return victim not in {pod["metadata"]["name"] for pod in pods} and len([p for p in pods if is_ready(p)]) == 2


def test_a_container_killed_through_containerd_restarts_and_the_service_keeps_answering(
    node_operator: Operator,
    node: Node,
    cluster: ControlPlane,
    restricted_namespace: str,
):
    namespace, name = restricted_namespace, "iris"
    service = _behind_service(cluster, namespace, name, node)
    victim = pods_of(cluster, namespace, name)[0]
    container_id = victim["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")

    loop = _predictions_loop(service)
    loop.start()
    try:
        time.sleep(1)
        # As the kernel's OOM killer or a crash would: no SIGTERM, no drain.
        node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
        eventually(
            lambda: _restarted(cluster, namespace, name, victim["metadata"]["name"]),
            timeout=180,
            what="the killed container restarted and Ready",
        )
        time.sleep(2)
    finally:
        loop.stop()

    # Requests the dead container had in hand, or that reached it before its endpoint
    # left the Service, fail; the other pod answers throughout.
    assert loop.longest_silence() < 3, (
        f"no answer for {loop.longest_silence():.1f} s; {len(loop.failures)} failed: {loop.failures[:3]}"
    )
    assert loop.answered > 20


def _restarted(cluster: ControlPlane, namespace: str, name: str, pod_name: str) -> bool:
    (pod,) = [pod for pod in pods_of(cluster, namespace, name) if pod["metadata"]["name"] == pod_name]
    return pod["status"]["containerStatuses"][0]["restartCount"] == 1 and is_ready(pod)
