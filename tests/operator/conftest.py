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
def operator_client(cluster: ControlPlane):
    """The operator's own client (`modelplane.operator.kube`), for its code run in this
    process, connected to the test bed as its admin."""
    from modelplane.operator.kube import Kube

    return Kube(connections=4, kubeconfig=str(cluster.kubeconfig))


@pytest.fixture
def operator_context(cluster: ControlPlane, registry: Registry, monkeypatch: pytest.MonkeyPatch):
    """What the operator's passes work with, as the operator makes it, for its code run in
    this process as the test bed's admin, with the test bed's registry as its default."""
    from modelplane.operator.context import OperatorContext
    from modelplane.operator.settings import OperatorSettings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    context = OperatorContext.connect(
        OperatorSettings.from_environment(), threads=4, kubeconfig=str(cluster.kubeconfig)
    )
    context.events.start()
    yield context
    context.events.stop()
