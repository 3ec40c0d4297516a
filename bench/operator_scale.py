"""How the operator copes with many ModelDeployments created at once.

On the test bed (real control plane, kwok nodes, MLflow registry), this creates N
ModelDeployments at once and measures the time from each create to its Deployment
existing (p50, p99) and until all are Ready, and the operator's memory. The anchor is N
plain Deployments of the same pod template created directly: what the control plane
itself needs for the same pods, so the ratio shows what the operator adds. Each runs on
a control plane of its own, started afresh: the anchor's thousand Deployments and pods
left in the cluster slowed the operator's run that followed. Goals: all Ready within
60 s, p50 under 1 s, operator RSS under 150 MB.

    .venv/bin/python -m bench.operator_scale [--count 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from tests.operator.process import Operator
from tests.testbed import binaries
from tests.testbed.cluster import is_ready, start_control_plane
from tests.testbed.registry import register_test_models, start_registry

CREATORS = 16


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _list_call(kind: str):
    if kind == "Deployment":
        return client.AppsV1Api().list_namespaced_deployment
    custom = client.CustomObjectsApi()
    return lambda namespace, **kw: custom.list_namespaced_custom_object(
        "modelplane.io", "v1alpha1", namespace, "modeldeployments", **kw
    )


def _always(obj) -> bool:
    return True


def _record_first_seen(kubeconfig: str, kind: str, namespace: str, predicate, ready, stop, count, results) -> None:
    """Records when each object (by name) is first seen matching `predicate`: in a process
    of its own, as in the creating one its threads would delay what it sees."""
    config.load_kube_config(kubeconfig)
    list_call = _list_call(kind)
    listing = list_call(namespace)
    version = listing["metadata"]["resourceVersion"] if isinstance(listing, dict) else listing.metadata.resource_version
    seen: dict[str, float] = {}
    ready.set()
    while not stop.is_set():
        stream = watch.Watch()
        # Plain JSON: made into typed objects, thousands of events kept it seconds behind.
        for event in stream.stream(
            list_call, namespace, resource_version=version, timeout_seconds=2, deserialize=False
        ):
            obj = event["object"]
            name, version = obj["metadata"]["name"], obj["metadata"]["resourceVersion"]
            if name not in seen and predicate(obj):
                seen[name] = time.monotonic()  # one clock for every process
                count.value = len(seen)
            if stop.is_set():
                stream.stop()
                break
    results.put(seen)


class FirstSeen:
    """When each object of `kind` in `namespace` was first seen matching `predicate`."""

    def __init__(self, kubeconfig: Path, kind: str, namespace: str, predicate=_always):
        context = multiprocessing.get_context("spawn")
        ready, self._stop = context.Event(), context.Event()
        self._count, self._results = context.Value("i", 0), context.Queue()
        self._process = context.Process(
            target=_record_first_seen,
            daemon=True,
            args=(str(kubeconfig), kind, namespace, predicate, ready, self._stop, self._count, self._results),
        )
        self._process.start()
        if not ready.wait(60):
            raise RuntimeError(f"the watch of {kind} in {namespace} did not start")

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._count.value < count and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        seen = self._results.get(timeout=30)
        self._process.join(10)
        return seen


def _available(deployment: dict) -> bool:
    return ((deployment.get("status") or {}).get("availableReplicas") or 0) >= 1


def _create_all(create, count: int) -> dict[str, float]:
    created: dict[str, float] = {}

    def one(index: int) -> None:
        name = f"m{index:04d}"
        create(name)
        created[name] = time.monotonic()

    with ThreadPoolExecutor(CREATORS) as pool:
        list(pool.map(one, range(count)))
    return created


def _pod_template(name: str) -> dict:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "model", "image": "example.invalid/serving:bench"}]},
    }


def anchor(apps: client.AppsV1Api, kubeconfig: Path, count: int) -> float:
    namespace = "anchor"
    client.CoreV1Api().create_namespace({"metadata": {"name": namespace}})
    watcher = FirstSeen(kubeconfig, "Deployment", namespace, _available)
    started = time.monotonic()
    _create_all(
        lambda name: apps.create_namespaced_deployment(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": _pod_template(name)},
            },
        ),
        count,
    )
    watcher.wait_for(count, timeout=600)
    available = watcher.stop()
    return max(available.values()) - started if len(available) == count else float("inf")


def operator_run(custom: client.CustomObjectsApi, kubeconfig: Path, count: int, operator: Operator) -> dict:
    namespace = "scale"
    client.CoreV1Api().create_namespace({"metadata": {"name": namespace}})
    deployment_watcher = FirstSeen(kubeconfig, "Deployment", namespace)
    ready_watcher = FirstSeen(kubeconfig, "ModelDeployment", namespace, is_ready)
    started = time.monotonic()
    created = _create_all(
        lambda name: custom.create_namespaced_custom_object(
            "modelplane.io",
            "v1alpha1",
            namespace,
            "modeldeployments",
            {
                "apiVersion": "modelplane.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": name},
                "spec": {"mode": "online", "model": {"name": "iris", "alias": "champion"}},
            },
        ),
        count,
    )
    ready_watcher.wait_for(count, timeout=600)
    ready, deployments = ready_watcher.stop(), deployment_watcher.stop()
    lags = [deployments[name] - created[name] for name in created if name in deployments]
    return {
        "all_ready_s": max(ready.values()) - started if len(ready) == count else float("inf"),
        "ready": len(ready),
        "to_deployment_p50_s": _percentile(lags, 0.5),
        "to_deployment_p99_s": _percentile(lags, 0.99),
        "operator_rss_mb": _rss_mb(operator.component.pid),
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak, not whatever is resident at the end
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    count = parser.parse_args().count
    binaries.ensure_built()
    root = Path(tempfile.mkdtemp(prefix="modelplane-bench-"))
    registry, tracking_uri = start_registry(root / "registry", root / "registry" / "logs")
    try:
        register_test_models(tracking_uri)
        with _fresh_control_plane(root / "anchor") as plane:
            anchor_s = anchor(client.AppsV1Api(), plane.kubeconfig, count)
        with _fresh_control_plane(root / "operator") as plane:
            plane.kubectl("apply", "--server-side", "-f", str(Path(__file__).parents[1] / "crds"))
            plane.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelplane.io")
            operator = Operator(plane.kubeconfig, tracking_uri, root / "operator" / "logs").start()
            try:
                time.sleep(3)  # let it connect and list before the flood
                result = operator_run(client.CustomObjectsApi(), plane.kubeconfig, count, operator)
            finally:
                operator.stop()

        print(f"{count} plain Deployments available (anchor): {anchor_s:.1f} s")
        print(
            f"{count} ModelDeployments Ready: {result['all_ready_s']:.1f} s ({result['ready']} Ready), "
            f"ratio to anchor {result['all_ready_s'] / anchor_s:.2f} (goal: <= 60 s)"
        )
        print(
            f"create -> Deployment: p50 {result['to_deployment_p50_s']:.2f} s, p99 {result['to_deployment_p99_s']:.2f} s "
            f"(goal: p50 <= 1 s)"
        )
        print(f"operator peak RSS: {result['operator_rss_mb']:.0f} MB (goal: <= 150 MB)")
        print(f"logs: {root}/*/logs")
    finally:
        registry.stop()


@contextlib.contextmanager
def _fresh_control_plane(root: Path):
    plane = start_control_plane(root / "cluster", root / "logs")
    try:
        config.load_kube_config(str(plane.kubeconfig))
        yield plane
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
