"""Fixtures for the operator's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Registry, show_logs_on_failure
from tests.operator.process import Operator
from tests.testbed.cluster import ControlPlane


@pytest.fixture(scope="module")
def operator(request: pytest.FixtureRequest, crd: ControlPlane, registry: Registry, testbed_dir: Path) -> Operator:
    """The operator, watching every namespace as the test bed's admin."""
    running = Operator(crd.kubeconfig, registry.tracking_uri, testbed_dir / "logs").start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()


@pytest.fixture
def operator_client(cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch):
    """The operator's client module (`modelplane.operator.kube`), for its own code run in
    this process, connected to the test bed as its admin."""
    from modelplane.operator import kube

    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(cluster.kubeconfig))
    kube.dynamic_client.cache_clear()
    yield kube
    kube.dynamic_client.cache_clear()
