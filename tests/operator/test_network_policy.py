"""NetworkPolicies, with the operator's settings enabling them (as `networkPolicy.enabled`
does in the chart): one per online and streaming workload, owned like every child,
pruned by a mode switch or when the setting is turned off, re-created when deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Registry, show_logs_on_failure
from tests.operator.process import Operator
from tests.operator.resources import apply, children, events, manifest, ready
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

REGISTRY_EGRESS = [
    {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}],
        "ports": [{"protocol": "TCP", "port": 5000}],
    }
]
BROKER_EGRESS = [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 9092}]}]
GATEWAY = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]
SETTINGS = {
    "MODELPLANE_NETWORK_POLICY": json.dumps(
        {"ingressFrom": GATEWAY, "registryEgress": REGISTRY_EGRESS, "brokerEgress": BROKER_EGRESS}
    )
}
STREAMING = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out"}


@pytest.fixture(scope="module")
def operator(request: pytest.FixtureRequest, crd: ControlPlane, registry: Registry, testbed_dir: Path) -> Operator:
    """The operator with NetworkPolicies enabled, in place of the shared one."""
    running = Operator(
        crd.kubeconfig, registry.tracking_uri, testbed_dir / "logs", name="operator-network-policy", settings=SETTINGS
    ).start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()


def _policy(cluster: ControlPlane, namespace: str, name: str) -> dict | None:
    found = cluster.kubectl("get", "networkpolicy", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_an_online_workload_accepts_only_its_port_from_the_allowed_peers(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
):
    apply(cluster, namespace, manifest("iris", online={"port": 8000}))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")

    assert children(cluster, namespace) == ["Deployment/iris", "NetworkPolicy/iris", "Service/iris"]
    policy = _policy(cluster, namespace, "iris")
    owner = cluster.get("modeldeployment", "iris", namespace)["metadata"]["uid"]
    assert [(ref["uid"], ref["controller"]) for ref in policy["metadata"]["ownerReferences"]] == [(owner, True)]
    pods = cluster.get("deployment", "iris", namespace)["spec"]["template"]["metadata"]["labels"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pods.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": GATEWAY, "ports": [{"protocol": "TCP", "port": 8000}]}]
    dns, *rest = spec["egress"]
    assert sorted((port["protocol"], port["port"]) for port in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert rest == REGISTRY_EGRESS  # no broker for an online workload


def test_a_deleted_policy_comes_back(operator: Operator, cluster: ControlPlane, namespace: str):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    first = _policy(cluster, namespace, "iris")["metadata"]["uid"]

    cluster.kubectl("delete", "networkpolicy", "iris", "-n", namespace)

    eventually(
        lambda: (_policy(cluster, namespace, "iris") or {"metadata": {"uid": first}})["metadata"]["uid"] != first,
        what="the NetworkPolicy re-created",
    )
    eventually(
        lambda: any(
            reason == "Restored" and "NetworkPolicy/iris" in message
            for reason, message in events(cluster, namespace, "iris")
        ),
        what="a Restored Event",
    )


def test_switching_mode_moves_the_policy_to_the_workload_that_runs(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="online Ready")

    apply(cluster, namespace, manifest("iris", mode="streaming", streaming=STREAMING))
    eventually(
        lambda: children(cluster, namespace) == ["Deployment/iris-stream", "NetworkPolicy/iris-stream"],
        what="the online children pruned, the consumers' policy made",
    )
    spec = _policy(cluster, namespace, "iris-stream")["spec"]
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]  # the metrics port
    assert spec["egress"][1:] == REGISTRY_EGRESS + BROKER_EGRESS

    apply(
        cluster,
        namespace,
        manifest(
            "iris", mode="batch", streaming=STREAMING, batch={"input": "/in", "output": "/out", "schedule": "@daily"}
        ),
    )
    eventually(lambda: children(cluster, namespace) == ["CronJob/iris"], what="only the CronJob left")


def test_turning_policies_off_removes_them(
    request: pytest.FixtureRequest,
    operator: Operator,
    registry: Registry,
    cluster: ControlPlane,
    namespace: str,
    testbed_dir: Path,
):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    assert "NetworkPolicy/iris" in children(cluster, namespace)

    operator.stop()
    without = Operator(
        cluster.kubeconfig, registry.tracking_uri, testbed_dir / "logs", name="operator-network-policy-off"
    ).start()
    show_logs_on_failure(request.config, [without.component])
    try:
        eventually(
            lambda: children(cluster, namespace) == ["Deployment/iris", "Service/iris"],
            what="the NetworkPolicy pruned by the operator without the setting",
        )
    finally:
        without.stop()
        operator.start()
