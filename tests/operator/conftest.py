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
