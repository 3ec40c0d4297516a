"""Start and stop the test bed by hand, for debugging:

python -m tests.testbed build   # build or reuse the Go binaries and the node's images, with timings
python -m tests.testbed up      # start everything, print the variables to export
python -m tests.testbed up --node  # and a real node with the project's images (needs root)
python -m tests.testbed down    # stop what `up` started
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from tests.testbed import binaries, images, node
from tests.testbed.cluster import start_control_plane
from tests.testbed.process import ComponentFailed, stop_pid
from tests.testbed.registry import register_test_models, start_registry

DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".testbed"


def _up(root: Path, with_node: bool) -> int:
    if (root / "state.json").exists():
        print(f"a test bed is already up in {root}; run `python -m tests.testbed down` first", file=sys.stderr)
        return 1
    shutil.rmtree(root, ignore_errors=True)
    binaries.ensure_built()
    started = []
    try:
        plane = start_control_plane(root / "cluster", root / "logs", die_with_parent=False)
        started += plane.components
        registry, tracking_uri = start_registry(root / "registry", root / "logs", die_with_parent=False)
        started.append(registry)
        models = register_test_models(tracking_uri)
        if with_node:
            built = [images.pause_image(_say), images.serving_image(_say), images.operator_image(_say)]
            real_node = node.start_node(plane, root / "node", root / "logs", built, die_with_parent=False)
            started += real_node.components
            pod_registry, pod_tracking_uri = start_registry(
                root / "registry", root / "logs", die_with_parent=False, host=real_node.gateway, name="mlflow-for-pods"
            )
            started.append(pod_registry)
    except ComponentFailed as failure:
        for component in reversed(started):
            component.stop()
        print(failure, file=sys.stderr)
        return 1
    state = {"pids": {c.name: c.pid for c in started}, "logs": str(root / "logs")}
    if with_node:
        state["node"] = {"root": str(real_node.root), "netns_before": sorted(real_node.netns_before)}
    (root / "state.json").write_text(json.dumps(state, indent=2))
    print(f"test bed up; logs in {state['logs']}; models: {models}")
    if with_node:
        print(
            f"node {real_node.name} up: images {', '.join(image.name for image in built)}; pods reach the "
            f"registry at {pod_tracking_uri}; place a pod with {json.dumps(real_node.placement)}"
        )
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"export MLFLOW_TRACKING_URI={tracking_uri}")
    print(f"export PATH={binaries.cache_dir() / 'bin'}:$PATH")
    return 0


def _down(root: Path) -> int:
    state_file = root / "state.json"
    if not state_file.exists():
        print(f"no test bed is up in {root}", file=sys.stderr)
        return 1
    state = json.loads(state_file.read_text())
    for name, pid in reversed(list(state["pids"].items())):
        stop_pid(pid)
        print(f"stopped {name} (pid {pid})")
    if "node" in state:
        node.clear_leftovers(Path(state["node"]["root"]), set(state["node"]["netns_before"]))
        print(
            "cleared what the node left: its pods' processes, containerd's shims, mounts, kube-proxy's rules, "
            "the pod network"
        )
    state_file.unlink()
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed")
    parser.add_argument("action", choices=["build", "up", "down"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state and logs; default: %(default)s")
    parser.add_argument(
        "--node",
        action="store_true",
        help="with `up`: also a real node (containerd, kubelet, "
        "kube-proxy) with the project's images, and the registry on its pods' gateway",
    )
    args = parser.parse_args()
    if args.action == "build":
        binaries.ensure_built(_say)
        if os.geteuid() != 0:
            _say("the node tier's images are not built: that needs root (its tests need it too)")
            return 0
        images.pause_image(_say)
        _say(f"serving image: {images.serving_image(_say).size_mb:.0f} MB")
        _say(f"operator image: {images.operator_image(_say).size_mb:.0f} MB")
        return 0
    return _up(args.dir, args.node) if args.action == "up" else _down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
