"""The operator against the real control plane, kwok nodes and MLflow registry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import yaml

from tests.conftest import Registry
from tests.operator.conftest import SERVING_IMAGE, Operator
from tests.testbed.cluster import ControlPlane

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

CHILD_KINDS = "deployments,services,horizontalpodautoscalers,cronjobs,jobs"


def eventually(check: Callable[[], object], timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout:.0f} s"
        time.sleep(0.25)


def _manifest(name: str, **spec) -> dict:
    return {
        "apiVersion": "modelplane.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"mode": "online", "model": {"name": "iris", "alias": "champion"}, **spec},
    }


def _apply(cluster: ControlPlane, namespace: str, manifest: dict) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def _status(cluster: ControlPlane, namespace: str, name: str) -> dict:
    return cluster.get("modeldeployment", name, namespace).get("status") or {}


def _condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def _ready(cluster: ControlPlane, namespace: str, name: str, generation: int | None = None) -> dict | None:
    status = _status(cluster, namespace, name)
    ready = _condition(status, "Ready")
    current = generation is None or ready.get("observedGeneration") == generation
    return status if ready.get("status") == "True" and current else None


def _children(cluster: ControlPlane, namespace: str) -> list[str]:
    listing = cluster.kubectl("get", CHILD_KINDS, "-n", namespace, "-l", "app.kubernetes.io/managed-by=modelplane",
                              "-o", "json").stdout
    return sorted(f"{item['kind']}/{item['metadata']['name']}" for item in json.loads(listing)["items"]
                  if any(ref["kind"] == "ModelDeployment" for ref in item["metadata"].get("ownerReferences", [])))


def test_online_deployment_becomes_ready_with_the_serving_contract(
    operator: Operator, registry: Registry, cluster: ControlPlane, restricted_namespace: str,
):
    namespace = restricted_namespace
    _apply(cluster, namespace, _manifest("iris", online={"replicas": 2}))

    status = eventually(lambda: _ready(cluster, namespace, "iris"), what="Ready=True")

    assert status["modelVersion"] == registry.models.champion_version
    assert status["endpoint"] == f"http://iris.{namespace}.svc:8080"
    assert _condition(status, "ModelResolved")["status"] == "True"
    assert _children(cluster, namespace) == ["Deployment/iris", "Service/iris"]
    deployment = cluster.get("deployment", "iris", namespace)
    assert deployment["status"]["readyReplicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == SERVING_IMAGE and container["args"] == ["serve"]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["MODELPLANE_MODEL"] == f"models:/iris/{registry.models.champion_version}"
    assert env["MLFLOW_TRACKING_URI"] == registry.tracking_uri
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= container.keys()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    columns = cluster.kubectl("get", "mdep", "iris", "-n", namespace, "--no-headers").stdout.split()
    assert columns[:6] == ["iris", "online", "iris", registry.models.champion_version, "True", status["endpoint"]]


def test_ready_waits_for_the_pods(operator: Operator, cluster: ControlPlane, namespace: str):
    # A node selector no node matches: the pods stay Pending, so Ready must stay False.
    _apply(cluster, namespace, _manifest("iris", nodeSelector={"modelplane.io/test": "nowhere"}))

    status = eventually(lambda: _condition(_status(cluster, namespace, "iris"), "Ready") and _status(cluster, namespace, "iris"),
                        what="a Ready condition")
    time.sleep(2)
    status = _status(cluster, namespace, "iris")

    assert _condition(status, "Ready")["status"] == "False"
    assert _condition(status, "Ready")["reason"] == "ReplicasNotReady"
    assert _condition(status, "Progressing")["status"] == "True"

    cluster.kubectl("patch", "mdep", "iris", "-n", namespace, "--type=json",
                    "-p", '[{"op": "remove", "path": "/spec/nodeSelector"}]')
    eventually(lambda: _ready(cluster, namespace, "iris"), what="Ready=True once the pods can be placed")


def test_switching_mode_replaces_the_children(operator: Operator, cluster: ControlPlane, namespace: str):
    _apply(cluster, namespace, _manifest("iris"))
    eventually(lambda: _ready(cluster, namespace, "iris", 1), what="online Ready")

    batch = {"input": "/data/in", "output": "/data/out"}
    _apply(cluster, namespace, _manifest("iris", mode="batch", batch=batch))
    status = eventually(lambda: _ready(cluster, namespace, "iris", 2), what="the batch Job complete")
    (job,) = _children(cluster, namespace)
    assert job.startswith("Job/iris-")
    assert status["lastSuccessfulTime"] and "endpoint" not in status

    streaming = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out"}
    _apply(cluster, namespace, _manifest("iris", mode="streaming", batch=batch, streaming=streaming))
    eventually(lambda: _ready(cluster, namespace, "iris", 3), what="streaming Ready")
    eventually(lambda: _children(cluster, namespace) == ["Deployment/iris-stream"], what="only the consumers left")

    _apply(cluster, namespace, _manifest("iris", batch={**batch, "schedule": "*/5 * * * *"}, mode="batch"))
    eventually(lambda: _children(cluster, namespace) == ["CronJob/iris"], what="only the CronJob left")
    status = eventually(lambda: _ready(cluster, namespace, "iris", 4), what="the schedule Ready")
    assert _condition(status, "Ready")["reason"] == "Scheduled"


def test_a_restarted_operator_writes_nothing_new(operator: Operator, cluster: ControlPlane, namespace: str):
    _apply(cluster, namespace, _manifest("iris"))
    eventually(lambda: _ready(cluster, namespace, "iris"), what="Ready")
    before = {kind: cluster.get(kind, "iris", namespace)["metadata"]["resourceVersion"] for kind in ("deployment", "service")}
    status_before = _status(cluster, namespace, "iris")

    operator.kill()
    log_before = operator.component.log_path.read_text()
    operator.start()
    resumed = f"[{namespace}/iris] Handler 'reconcile_model_deployment' succeeded"
    eventually(lambda: resumed in operator.component.log_path.read_text()[len(log_before):],
               timeout=30, what="the restarted operator resuming the ModelDeployment")
    time.sleep(1)  # and any child event that pass might cause

    after = {kind: cluster.get(kind, "iris", namespace)["metadata"]["resourceVersion"] for kind in ("deployment", "service")}
    assert after == before
    assert _children(cluster, namespace) == ["Deployment/iris", "Service/iris"]
    assert _status(cluster, namespace, "iris") == status_before


def test_deleting_collects_the_children(operator: Operator, cluster: ControlPlane, namespace: str):
    _apply(cluster, namespace, _manifest("iris", online={"autoscaling": {"maxReplicas": 3}}))
    eventually(lambda: _ready(cluster, namespace, "iris"), what="Ready")
    assert _children(cluster, namespace) == ["Deployment/iris", "HorizontalPodAutoscaler/iris", "Service/iris"]

    cluster.kubectl("delete", "mdep", "iris", "-n", namespace, "--timeout=30s")

    eventually(lambda: _children(cluster, namespace) == [], what="the children garbage-collected")


def test_a_missing_model_is_reported_and_nothing_is_deployed(operator: Operator, cluster: ControlPlane, namespace: str):
    _apply(cluster, namespace, _manifest("ghost", model={"name": "no-such-model", "alias": "champion"}))

    resolved = eventually(lambda: _condition(_status(cluster, namespace, "ghost"), "ModelResolved"), what="ModelResolved")

    assert resolved["status"] == "False" and resolved["reason"] == "ModelNotFound"
    assert "no-such-model" in resolved["message"]
    assert _children(cluster, namespace) == []
