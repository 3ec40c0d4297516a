"""Streaming mode on a cluster with KEDA's ScaledObject CRD (from KEDA's own module): the
operator scales consumers on lag with a ScaledObject the API server accepts, and removes it
when autoscaling is turned off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Registry, show_logs_on_failure
from tests.operator.process import Operator
from tests.operator.resources import apply, manifest
from tests.testbed import binaries
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
SCALED_OBJECTS = "scaledobjects.keda.sh"


@pytest.fixture(scope="module")
def operator(request: pytest.FixtureRequest, crd: ControlPlane, registry: Registry, testbed_dir: Path) -> Operator:
    """The operator, started once KEDA's CRD is installed (it looks when it starts)."""
    crd.kubectl("apply", "--server-side", "-f", str(binaries.keda_scaled_object_crd()))
    crd.wait_established(SCALED_OBJECTS)
    running = Operator(crd.kubeconfig, registry.tracking_uri, testbed_dir / "logs").start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()
    # The CRD stays: an operator started later only lists ScaledObjects too, while one
    # deleted under a running operator would fail its prune.


def _consumers(**streaming) -> dict:
    return manifest(
        "events",
        mode="streaming",
        model={"name": "iris", "version": "1"},
        streaming={
            "source": "kafka://kafka.streaming.svc:9092/measurements",
            "sink": "kafka://kafka.streaming.svc:9092/out",
            **streaming,
        },
    )


def _scaled_object(cluster: ControlPlane, namespace: str) -> dict | None:
    found = cluster.kubectl("get", SCALED_OBJECTS, "events-stream", "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_consumers_scale_on_lag_with_a_scaled_object_the_api_server_accepts(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
):
    apply(cluster, namespace, _consumers(autoscaling={"minReplicas": 1, "maxReplicas": 4, "lagThreshold": 200}))

    scaled = eventually(lambda: _scaled_object(cluster, namespace), timeout=60, what="the ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "events-stream"
    assert scaled["spec"]["maxReplicaCount"] == 4
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka.streaming.svc:9092",
        "topic": "measurements",
        "consumerGroup": f"{namespace}.events",
        "lagThreshold": "200",
    }
    assert scaled["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"

    apply(cluster, namespace, _consumers(replicas=2))
    eventually(lambda: _scaled_object(cluster, namespace) is None, timeout=60, what="the ScaledObject removed")
    eventually(
        lambda: cluster.get("deployment", "events-stream", namespace)["spec"]["replicas"] == 2,
        what="two consumers, fixed",
    )
