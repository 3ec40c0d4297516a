"""The Helm chart on the real node: `helm install` with the images built here runs the
operator in the cluster, as the chart's ServiceAccount with its RBAC, reaching the API
server through the `kubernetes` Service; the ModelDeployment it reconciles answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Registry
from tests.node.conftest import NodeImages
from tests.node.workloads import PORT, answers, pods_of, service_url
from tests.operator.resources import apply, manifest, ready
from tests.testbed.cluster import ControlPlane
from tests.testbed.node import Node
from tests.waiting import eventually

pytestmark = pytest.mark.node
CHART = REPO / "charts" / "modelplane"
RELEASE = "modelplane"


@pytest.fixture
def operator_release(
    crd: ControlPlane,
    node: Node,
    node_images: NodeImages,
    pod_registry: str,
    restricted_namespace: str,
    testbed_dir: Path,
) -> str:
    """The chart installed in a namespace of its own, watching only that namespace."""
    namespace = restricted_namespace
    operator_repository, operator_tag = node_images.operator.name.rsplit(":", 1)
    serving_repository, serving_tag = node_images.serving.name.rsplit(":", 1)
    crd.helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "3m",
        "--set",
        "crds.install=false",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        f"image.repository={operator_repository}",
        "--set",
        f"image.tag={operator_tag}",
        "--set",
        f"servingImage.repository={serving_repository}",
        "--set",
        f"servingImage.tag={serving_tag}",
        "--set",
        f"defaultRegistry={pod_registry}",
        "--set-json",
        f"nodeSelector={json.dumps(node.placement['nodeSelector'])}",
        "--set-json",
        f"tolerations={json.dumps(node.placement['tolerations'])}",
    )
    yield namespace
    node.keep_pod_logs(namespace, testbed_dir / "logs")
    crd.helm("uninstall", RELEASE, "-n", namespace, "--wait")


def test_the_chart_runs_the_operator_in_the_cluster_and_its_model_answers(
    operator_release: str,
    node: Node,
    registry: Registry,
    cluster: ControlPlane,
):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    namespace, name = operator_release, "iris"
    operator_pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=modelplane", "-o", "json").stdout
    )["items"]
    assert [(pod["spec"]["nodeName"], pod["status"]["phase"]) for pod in operator_pods] == [(node.name, "Running")]
    assert operator_pods[0]["spec"]["serviceAccountName"] == RELEASE

    apply(cluster, namespace, manifest(name, online={"replicas": 1, "port": PORT}, **node.placement))
    status = eventually(
        lambda: ready(cluster, namespace, name), timeout=240, what="the in-cluster operator's pods Ready"
    )

    assert status["modelVersion"] == registry.models.champion_version
    assert {pod["spec"]["nodeName"] for pod in pods_of(cluster, namespace, name)} == {node.name}
    service = service_url(cluster, namespace, name)
    eventually(lambda: answers(f"{service}/version"), timeout=30, what="the Service routing")
    features, _ = iris_features()
    rows = features.iloc[:10]
    in_process = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}/{registry.models.champion_version}").predict(
        rows
    )
    answer = requests.post(f"{service}/invocations", json={"dataframe_records": rows.to_dict("records")}, timeout=10)
    assert answer.json() == {"predictions": list(in_process)}
