"""Fixtures for the operator's tests: the CRD installed on the test bed's API server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import show_logs_on_failure
from tests.testbed.cluster import ControlPlane
from tests.testbed.process import Component

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "modelplane.io_modeldeployments.yaml"
SERVING_IMAGE = "example.invalid/modelplane/serving:test"


@pytest.fixture(scope="session")
def crd(cluster: ControlPlane) -> ControlPlane:
    """The cluster with the checked-in ModelDeployment CRD applied and established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelplane.io", "--timeout=30s")
    return cluster


@pytest.fixture
def restricted_namespace(cluster: ControlPlane, namespace: str) -> str:
    """A fresh namespace whose pods must meet the "restricted" Pod Security Standard."""
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    return namespace


class Operator:
    """`modelplane operator -A` as a local process against the test bed."""

    def __init__(self, cluster: ControlPlane, registry_uri: str, log_dir: Path):
        self.env = {
            "KUBECONFIG": str(cluster.kubeconfig),
            "MLFLOW_TRACKING_URI": registry_uri,
            "MODELPLANE_SERVING_IMAGE": SERVING_IMAGE,
        }
        self.log_dir = log_dir
        self.component: Component | None = None

    def start(self) -> Operator:
        modelplane = Path(sys.executable).parent / "modelplane"
        self.component = Component("modelplane-operator", [str(modelplane), "operator", "--all-namespaces"],
                                   self.log_dir, env=self.env).start()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod would: no chance to tidy up."""
        self.component.process.kill()
        self.component.process.wait()

    def stop(self) -> None:
        self.component.stop()


@pytest.fixture(scope="module")
def operator(request: pytest.FixtureRequest, crd: ControlPlane, registry, testbed_dir: Path) -> Operator:
    running = Operator(crd, registry.tracking_uri, testbed_dir / "logs").start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()
