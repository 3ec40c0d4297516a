"""Applying children, with the operator's own client, against the real control plane."""

from __future__ import annotations

import pytest

from tests.testbed.cluster import ControlPlane

pytestmark = pytest.mark.cluster


@pytest.fixture
def kube(cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch):
    """The operator's client module, connected to the test bed as its admin."""
    from modelplane.operator import kube

    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(cluster.kubeconfig))
    kube.dynamic_client.cache_clear()
    yield kube
    kube.dynamic_client.cache_clear()


def _config_map(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"model": name}}


def test_applying_one_child_after_another_reuses_one_connection(kube, cluster: ControlPlane, namespace: str):
    from modelplane.operator.apply import apply_children

    kube.resource("v1", "ConfigMap")  # discovery, before counting
    pools = kube.dynamic_client().client.rest_client.pool_manager.pools
    opened_before = sum(pools[key].num_connections for key in pools.keys())

    written = apply_children([_config_map(namespace, f"child-{index}") for index in range(5)], compare=False)

    assert written == 5
    assert cluster.get("configmap", "child-4", namespace)["data"] == {"model": "child-4"}
    # An answer left unread holds its connection: each apply would open (and handshake) another.
    assert sum(pools[key].num_connections for key in pools.keys()) - opened_before <= 1
