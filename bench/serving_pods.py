"""How the serving image fares on a real node: its size, how soon a pod serving iris is
Ready after its container starts, and the pod's memory at rest.

On the test bed with its real node (containerd + kubelet, run as root), the operator
deploys iris online with N replicas. The anchor, run first on the same node, is N pods of
the base image the serving image is built on, running Python's own HTTP server with the
same probes: what the node, Python and the probe cadence cost before any model is
loaded. Goals: image ≤ 700 MB, Ready ≤ 10 s after the container starts.

    .venv/bin/python -m bench.serving_pods [--replicas 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import yaml

from modelplane.operator.render.pod import http_probes
from tests.node.workloads import PORT, seconds_to_ready
from tests.operator.process import Operator
from tests.testbed import binaries, images
from tests.testbed.cluster import ControlPlane, is_ready, start_control_plane
from tests.testbed.node import Node, start_node
from tests.testbed.registry import register_test_models, start_registry
from tests.waiting import eventually

NAMESPACE = "default"
CRD_FILE = Path(__file__).resolve().parents[1] / "crds" / "modelplane.io_modeldeployments.yaml"


def _ready_pods(plane: ControlPlane, selector: str, count: int) -> list[dict]:
    pods = json.loads(plane.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout)["items"]
    ready = [pod for pod in pods if is_ready(pod)]
    return ready if len(ready) == count else []


def _measure(plane: ControlPlane, node: Node, selector: str, count: int) -> tuple[list[float], float]:
    """Seconds from each container's start to its pod's Ready, and the largest pod's
    resident memory in MiB once all are Ready."""
    pods = eventually(lambda: _ready_pods(plane, selector, count), timeout=600, what=f"{count} pods Ready")
    seconds = [seconds_to_ready(pod) for pod in pods]
    resident = max(node.pod_memory_bytes(pod["metadata"]["uid"]) for pod in pods) / 2**20
    return seconds, resident


def _anchor(base: images.Image, replicas: int, node: Node) -> dict:
    """The base image serving plain HTTP with the serving pods' probes."""
    container = {
        "name": "http",
        "image": base.name,
        "command": ["python3", "-m", "http.server", str(PORT)],
        "ports": [{"name": "http", "containerPort": PORT}],
        **http_probes("http"),
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["path"] = "/"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "anchor", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"bench": "anchor"}},
            "template": {
                "metadata": {"labels": {"bench": "anchor"}},
                "spec": {"containers": [container], **node.placement},
            },
        },
    }


def _summary(what: str, seconds: list[float], resident: float) -> str:
    return (
        f"{what}: container start → Ready median {statistics.median(seconds):.1f} s, "
        f"max {max(seconds):.1f} s; resident memory at rest {resident:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving_pods")
    parser.add_argument("--replicas", type=int, default=4)
    args = parser.parse_args()
    binaries.ensure_built()
    built = [images.pause_image(), images.base_image(), images.serving_image()]
    base, serving = built[1], built[2]
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as work:
        root = Path(work)
        stops = []  # run in reverse: operator, pod registry, node, registry, control plane
        try:
            plane = start_control_plane(root / "cluster", root / "logs")
            stops.append(plane.stop)
            registry, tracking_uri = start_registry(root / "registry", root / "logs")
            stops.append(registry.stop)
            register_test_models(tracking_uri)
            node = start_node(plane, root / "node", root / "logs", built)
            stops.append(node.stop)
            pod_registry, pod_tracking_uri = start_registry(
                root / "registry", root / "logs", host=node.gateway, name="mlflow-for-pods"
            )
            stops.append(pod_registry.stop)

            plane.apply(_anchor(base, args.replicas, node))
            anchor_seconds, anchor_resident = _measure(plane, node, "bench=anchor", args.replicas)
            plane.kubectl("delete", "deployment", "anchor", "-n", NAMESPACE, "--wait=true")

            operator = Operator(plane.kubeconfig, pod_tracking_uri, root / "logs", serving_image=serving.name).start()
            stops.append(operator.stop)
            plane.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
            plane.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelplane.io")
            plane.kubectl(
                "apply",
                "-n",
                NAMESPACE,
                "-f",
                "-",
                input=yaml.safe_dump(
                    {
                        "apiVersion": "modelplane.io/v1alpha1",
                        "kind": "ModelDeployment",
                        "metadata": {"name": "iris"},
                        "spec": {
                            "mode": "online",
                            "model": {"name": "iris", "alias": "champion"},
                            "online": {"replicas": args.replicas, "port": PORT},
                            **node.placement,
                        },
                    }
                ),
            )
            seconds, resident = _measure(plane, node, "modelplane.io/deployment=iris", args.replicas)
        finally:
            for stop in reversed(stops):
                stop()
    print(f"serving image {serving.size_mb:.0f} MB (goal ≤ 700 MB); its base {base.size_mb:.0f} MB")
    print(_summary(f"anchor, the base image's HTTP server ×{args.replicas}", anchor_seconds, anchor_resident))
    print(_summary(f"iris served by the serving image ×{args.replicas}", seconds, resident))
    print(
        f"ratio to the anchor: Ready {statistics.median(seconds) / statistics.median(anchor_seconds):.1f}×, "
        f"memory {resident / anchor_resident:.1f}× (goal: Ready ≤ 10 s)"
    )


if __name__ == "__main__":
    main()
