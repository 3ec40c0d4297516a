"""The message brokers streaming mode is tested against, each a real server on loopback:
Redis and NATS (with JetStream) from Debian's packages, Kafka in KRaft mode from Apache
Kafka's jars on Maven Central (fetched by binaries.kafka_classpath)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import binaries
from tests.testbed.process import Component, free_port, listening


@dataclass(frozen=True)
class Broker:
    scheme: str
    host: str
    port: int
    component: Component

    def url(self, name: str, **options: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"{self.scheme}://{self.host}:{self.port}/{name}" + (f"?{query}" if query else "")


def _program(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (scripts/setup --testbed installs it)")
    return path


def start_redis(root: Path, log_dir: Path) -> Broker:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Component(
        "redis",
        [
            _program("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(root),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        log_dir,
    ).start()
    server.wait_until(lambda: listening(port), timeout=30, what="listening")
    return Broker("redis", "127.0.0.1", port, server)


def start_nats(root: Path, log_dir: Path) -> Broker:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Component(
        "nats",
        [_program("nats-server"), "--jetstream", "--store_dir", str(root), "--addr", "127.0.0.1", "--port", str(port)],
        log_dir,
    ).start()
    server.wait_until(lambda: listening(port), timeout=30, what="listening")
    return Broker("nats", "127.0.0.1", port, server)


def _kafka_properties(root: Path, host: str, port: int, controller_port: int, tuned: bool) -> Path:
    # Offset commits answered at once: the group coordinator otherwise holds each write
    # 5 ms to batch it with others, which a lone consumer committing per batch waits out.
    tuning = ["group.coordinator.append.linger.ms=0"] if tuned else []
    properties = root / "server.properties"
    properties.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{controller_port}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={root / 'data'}",
                # One node: every internal topic with one replica, and no wait before a group's first rebalance.
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                *tuning,
                "num.partitions=1",
            ]
        )
        + "\n"
    )
    return properties


def start_kafka(root: Path, log_dir: Path, host: str = "127.0.0.1", name: str = "kafka", tuned: bool = True) -> Broker:
    """A single Kafka node in KRaft mode (broker and controller in one JVM), serving
    clients on `host` (loopback unless pods must reach it); with `tuned=False`, with
    Kafka's default group coordinator settings."""
    import base64
    import subprocess

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    port, controller_port = free_port(), free_port()
    properties = _kafka_properties(root, host, port, controller_port, tuned)
    java = [_program("java"), "-Xms256m", "-Xmx768m", "-cp", f"{binaries.kafka_libs()}/*"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # Joined to its option: an id starting with "-" (one in 64) would be read as an option.
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(properties)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = Component(name, [*java, "kafka.Kafka", str(properties)], log_dir).start()
    server.wait_until(lambda: _kafka_ready(host, port), timeout=120, what="serving metadata")
    return Broker("kafka", host, port, server)


def _kafka_ready(host: str, port: int) -> bool:
    from confluent_kafka.admin import AdminClient

    if not listening(port, host):
        return False
    return bool(AdminClient({"bootstrap.servers": f"{host}:{port}"}).list_topics(timeout=2).brokers)
