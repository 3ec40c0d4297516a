"""Session fixtures that start the test bed's real components (see tests/README.md)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.testbed import binaries
from tests.testbed.brokers import Broker, start_kafka, start_nats, start_redis
from tests.testbed.cluster import ControlPlane, start_control_plane
from tests.testbed.process import Component, log_tail
from tests.testbed.registry import RegistryModels, register_test_models, start_registry

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "modelplane.io_modeldeployments.yaml"

_COMPONENTS = pytest.StashKey[list[Component]]()
_START_SECONDS = pytest.StashKey[dict[str, float]]()


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    models: RegistryModels
    log_path: Path  # the server's access log among its lines: one per request


@pytest.fixture(scope="session")
def testbed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "testbed"


def show_logs_on_failure(config: pytest.Config, components: list[Component]) -> None:
    config.stash.setdefault(_COMPONENTS, []).extend(components)


def record_started(config: pytest.Config, what: str, components: list[Component], since: float) -> None:
    show_logs_on_failure(config, components)
    config.stash.setdefault(_START_SECONDS, {})[what] = time.monotonic() - since


def stop_and_check(components: list[Component], stop: Callable[[], None] | None = None) -> None:
    """Stops the components (in reverse order, or by `stop`); one that had already died
    fails the run with its log tail."""
    died = [c for c in components if c.process is not None and c.process.poll() is not None]
    if stop is not None:
        stop()
    else:
        for component in reversed(components):
            component.stop()
    if died:
        raise died[0].failure(f"died during the test session (exit code {died[0].process.returncode})")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, testbed_dir: Path) -> ControlPlane:
    """A real control plane (etcd, kube-apiserver, controller-manager, scheduler) with kwok nodes."""
    binaries.ensure_built()
    since = time.monotonic()
    plane = start_control_plane(testbed_dir / "cluster", testbed_dir / "logs")
    record_started(request.config, "control plane with kwok nodes", plane.components, since)
    yield plane
    stop_and_check(plane.components)


@pytest.fixture(scope="session")
def registry(request: pytest.FixtureRequest, testbed_dir: Path) -> Registry:
    """A real MLflow tracking server and registry holding the test models."""
    since = time.monotonic()
    server, tracking_uri = start_registry(testbed_dir / "registry", testbed_dir / "logs")
    try:
        models = register_test_models(tracking_uri)
    except BaseException:
        server.stop()
        raise
    record_started(request.config, "MLflow registry with test models", [server], since)
    yield Registry(tracking_uri, models, server.log_path)
    stop_and_check([server])


def _broker(request: pytest.FixtureRequest, testbed_dir: Path, start, what: str):
    """A broker for the session: started in its own folder, stopped (and checked) at the end."""
    since = time.monotonic()
    broker = start(testbed_dir / what, testbed_dir / "logs")
    record_started(request.config, what, [broker.component], since)
    yield broker
    stop_and_check([broker.component])


@pytest.fixture(scope="session")
def redis_broker(request: pytest.FixtureRequest, testbed_dir: Path) -> Broker:
    yield from _broker(request, testbed_dir, start_redis, "redis")


@pytest.fixture(scope="session")
def nats_broker(request: pytest.FixtureRequest, testbed_dir: Path) -> Broker:
    yield from _broker(request, testbed_dir, start_nats, "nats")


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest, testbed_dir: Path) -> Broker:
    yield from _broker(request, testbed_dir, start_kafka, "kafka")


@pytest.fixture(scope="session")
def crd(cluster: ControlPlane) -> ControlPlane:
    """The cluster with the checked-in ModelDeployment CRD applied and established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    cluster.wait_established("modeldeployments.modelplane.io")
    return cluster


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test, deleted after it (without waiting)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def restricted_namespace(cluster: ControlPlane, namespace: str) -> str:
    """A fresh namespace whose pods must meet the "restricted" Pod Security Standard."""
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    return namespace


# The markers of tests that need a part of the test bed, and the fixtures that start one.
TESTBED_MARKERS = ("cluster", "registry", "brokers", "node")
TESTBED_FIXTURES = {"cluster", "crd", "namespace", "registry", "kafka_broker", "redis_broker", "nats_broker", "node"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs none of the test bed and is not `slow` is of the unit tier (`-m
    unit`: seconds, no set-up); one that starts a part of the test bed must say so with its
    marker. The node tier runs last, so its real node and pods share the machine with no
    other test."""
    for item in items:
        if not any(item.get_closest_marker(marker) for marker in TESTBED_MARKERS):
            started = TESTBED_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if started:
                raise pytest.UsageError(
                    f"{item.nodeid} uses {', '.join(sorted(started))}: mark it {' or '.join(TESTBED_MARKERS)}"
                )
            if not item.get_closest_marker("slow"):
                item.add_marker(pytest.mark.unit)
    items.sort(key=lambda item: item.get_closest_marker("node") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test shows the log tails of the components it ran against."""
    report = yield
    if report.failed:
        for component in item.config.stash.get(_COMPONENTS, []):
            report.sections.append(
                (f"{component.name} log tail ({component.log_path})", log_tail(component.log_path, 15))
            )
    return report


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    for what, seconds in config.stash.get(_START_SECONDS, {}).items():
        terminalreporter.write_line(f"test bed: {what} started in {seconds:.1f} s")
