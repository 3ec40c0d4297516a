"""`modelplane serve` run as a local process, as the container runs it."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.testbed.process import Component, free_port

MODELPLANE = str(Path(sys.executable).parent / "modelplane")


def start_server(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    args: tuple[str, ...] = ("serve",),
    timeout: float = 120,
    executable: str = MODELPLANE,
) -> tuple[Component, str]:
    """Starts a server with `env` (MODELPLANE_PORT chosen here) and waits for /readyz."""
    port = free_port()
    server = Component(name, [executable, *args], log_dir, env={**env, "MODELPLANE_PORT": str(port)}).start()
    url = f"http://127.0.0.1:{port}"
    server.wait_until(lambda: urllib.request.urlopen(f"{url}/readyz", timeout=2).status == 200, timeout=timeout)
    return server, url


def run_to_exit(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [MODELPLANE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples, from a server's /metrics, whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def batching(url: str) -> tuple[float, float, float]:
    """(requests scored, predict calls, predict calls of one request alone) so far, from a
    server's /metrics: its histogram of requests per predict call."""
    return (
        metric(url, "modelplane_batch_requests_sum"),
        metric(url, "modelplane_batch_requests_count"),
        metric(url, "modelplane_batch_requests_bucket", le="1.0"),
    )
