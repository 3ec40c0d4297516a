"""Fixtures for the operator's tests: the CRD installed on the test bed's API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.cluster import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "modelplane.io_modeldeployments.yaml"


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
