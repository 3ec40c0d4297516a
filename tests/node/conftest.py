"""Fixtures of the node tier: images built here, a real containerd + kubelet node, and
what its pods reach on the bridge's gateway (see tests/README.md)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Registry, record_started, show_logs_on_failure, stop_and_check
from tests.operator.process import Operator
from tests.testbed import images
from tests.testbed.brokers import Broker, start_kafka
from tests.testbed.cluster import ControlPlane
from tests.testbed.node import Node, start_node
from tests.testbed.process import Component, free_port, listening
from tests.testbed.registry import start_registry


@dataclass(frozen=True)
class NodeImages:
    pause: images.Image
    serving: images.Image
    operator: images.Image


@pytest.fixture(scope="session")
def node_images(request: pytest.FixtureRequest) -> NodeImages:
    """The pause, serving and operator images, built once per change of their inputs."""
    say = request.config.pluginmanager.get_plugin("terminalreporter").write_line
    return NodeImages(images.pause_image(say), images.serving_image(say), images.operator_image(say))


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest, cluster: ControlPlane, node_images: NodeImages, testbed_dir: Path) -> Node:
    since = time.monotonic()
    started = start_node(
        cluster,
        testbed_dir / "node",
        testbed_dir / "logs",
        [node_images.pause, node_images.serving, node_images.operator],
    )
    record_started(request.config, "real node (containerd + kubelet) with images loaded", started.components, since)
    yield started
    stop_and_check(started.components, started.stop)


@pytest.fixture(scope="session")
def pod_registry(request: pytest.FixtureRequest, registry: Registry, node: Node, testbed_dir: Path) -> str:
    """The test registry as pods reach it: a second server on the same store, listening
    on the bridge's gateway."""
    server, tracking_uri = start_registry(
        testbed_dir / "registry", testbed_dir / "logs", host=node.gateway, name="mlflow-for-pods"
    )
    show_logs_on_failure(request.config, [server])
    yield tracking_uri
    stop_and_check([server])


@dataclass(frozen=True)
class FileServer:
    url: str  # ftp://user:password@gateway:port, as a pod's fsspec URL names it
    root: Path  # the folder it serves, as the test reads and writes it


@pytest.fixture(scope="session")
def file_server(request: pytest.FixtureRequest, node: Node, testbed_dir: Path) -> FileServer:
    """An FTP server on the bridge's gateway: batch pods read their input from it and
    write their predictions to it, through fsspec, as they would to any file store."""
    root, port = testbed_dir / "files", free_port()
    root.mkdir(parents=True, exist_ok=True)
    user, password = "modelplane", "testbed-files"
    server = Component(
        "ftp",
        [
            sys.executable,
            "-m",
            "pyftpdlib",
            "--interface",
            node.gateway,
            "--port",
            str(port),
            "--write",
            "--directory",
            str(root),
            "--username",
            user,
            "--password",
            password,
        ],
        testbed_dir / "logs",
    ).start()
    server.wait_until(lambda: listening(port, node.gateway), timeout=30, what="listening")
    show_logs_on_failure(request.config, [server])
    yield FileServer(f"ftp://{user}:{password}@{node.gateway}:{port}", root)
    stop_and_check([server])


@pytest.fixture(scope="session")
def pod_kafka(request: pytest.FixtureRequest, node: Node, testbed_dir: Path) -> Broker:
    """A Kafka broker on the bridge's gateway, for streaming pods."""
    since = time.monotonic()
    broker = start_kafka(testbed_dir / "kafka-for-pods", testbed_dir / "logs", host=node.gateway, name="kafka-for-pods")
    record_started(request.config, "Kafka for pods", [broker.component], since)
    yield broker
    stop_and_check([broker.component])


@pytest.fixture(scope="module")
def node_operator(
    request: pytest.FixtureRequest, crd: ControlPlane, pod_registry: str, node_images: NodeImages, testbed_dir: Path
) -> Operator:
    """The operator, rendering the serving image built here and the registry pods reach."""
    running = Operator(
        crd.kubeconfig, pod_registry, testbed_dir / "logs", serving_image=node_images.serving.name
    ).start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()
