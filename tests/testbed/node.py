"""A real node for the test bed: containerd with its CRI plugin, a kubelet and kube-proxy,
joined to the control plane, so pods run real images with real probes and volumes, and
Services route to them.

Everything stays on this machine: pods live on a bridge the node creates, and anything a
pod must reach listens on the bridge's gateway address. The node is tainted, so the kwok
tests' pods never land on it; a pod meant for it tolerates the taint and selects it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.testbed import binaries
from tests.testbed.cluster import ControlPlane, is_ready
from tests.testbed.images import Image, require_root
from tests.testbed.process import Component, free_port

NODE_NAME = "modelplane-node"
BRIDGE = "mp-br0"
POD_SUBNET = "10.89.0.0/24"
GATEWAY = "10.89.0.1"
TAINT_KEY = "modelplane.test/real-node"
CNI_BIN_DIR = "/usr/lib/cni"
NETNS_DIR = Path("/var/run/netns")
CONTAINERD_SOCKET = "containerd.sock"  # in the node's folder


@dataclass
class Node:
    name: str
    gateway: str  # where pods reach the host: the registry and brokers listen here for them
    root: Path
    components: list[Component] = field(default_factory=list)
    netns_before: set[str] = field(default_factory=set)  # network namespaces not ours

    @property
    def containerd_address(self) -> Path:
        return self.root / CONTAINERD_SOCKET

    @property
    def placement(self) -> dict:
        """The spec fields that put a pod on this node: its selector and the taint's toleration."""
        return {
            "nodeSelector": {"kubernetes.io/hostname": self.name},
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        }

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ctr", "--address", str(self.containerd_address), "--namespace", "k8s.io", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def load(self, image: Image) -> None:
        """Imports an image into the node's containerd."""
        self.ctr("images", "import", str(image.archive))

    def keep_pod_logs(self, namespace: str, logs: Path) -> None:
        """Copies the container logs of a namespace's pods beside the test bed's logs, as
        `<pod>_<container>.log`, before the kubelet removes them with their pods."""
        for log in (self.root / "pod-logs").glob(f"{namespace}_*/*/*.log"):
            pod = log.parent.parent.name.split("_")[1]
            with (logs / f"{pod}_{log.parent.name}.log").open("a") as kept:
                kept.write(log.read_text(errors="replace"))

    def pod_memory_bytes(self, pod_uid: str) -> int:
        """The resident memory of a pod's processes, from its memory cgroup."""
        cgroup = next(Path("/sys/fs/cgroup/memory/kubepods").rglob(f"pod{pod_uid}"))
        stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
        return int(stat["total_rss"])

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        clear_leftovers(self.root, self.netns_before)


def _containerd_config(root: Path, pause: Image) -> Path:
    cni = root / "cni"
    config = f"""
version = 2
root = "{root / "containerd" / "root"}"
state = "{root / "containerd" / "state"}"
[grpc]
  address = "{root / CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause.name}"
  # This machine refuses a negative oom_score_adj, which the sandbox would otherwise ask for.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
"""
    path = root / "containerd.toml"
    path.write_text(config)
    cni.mkdir(parents=True, exist_ok=True)
    (cni / "10-modelplane.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "modelplane",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        # The default route sends Service traffic to the host, where kube-proxy is.
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(root / "cni-ipam"),
                        },
                    },
                ],
            }
        )
    )
    return path


def _kubelet_config(root: Path) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine has cgroup v1 and no systemd managing cgroups.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "address": "127.0.0.1",
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(root / "pod-logs"),
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        # The test machine's disk is shared with everything else; pods here are few and small.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "resolvConf": "/etc/resolv.conf",
    }
    path = root / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _kube_proxy_config(root: Path, kubeconfig: Path) -> tuple[Path, str]:
    """The configuration file, and the URL of the health check that turns 200 once the
    rules are synced."""
    healthz = f"127.0.0.1:{free_port()}"
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": healthz,
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # The machine's conntrack settings are not the test bed's to change.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s", "localhostNodePorts": False},
    }
    path = root / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, f"http://{healthz}/healthz"


def _relay_api_server(plane: ControlPlane, logs: Path, **start) -> Component:
    """Pods reach the API server as in any cluster, through the `kubernetes` Service:
    kube-proxy sends its ClusterIP to a relay on the gateway, which passes the TLS stream
    on to the API server, itself listening on loopback only. The server's certificate
    names the ClusterIP, so in-cluster clients verify it as usual."""
    port = free_port()
    api_port = urllib.parse.urlsplit(plane.server).port
    relay = Component(
        "api-server-relay",
        ["socat", f"TCP-LISTEN:{port},bind={GATEWAY},fork,reuseaddr", f"TCP:127.0.0.1:{api_port}"],
        logs,
    ).start(**start)
    plane.apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes-via-gateway",
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "modelplane.test",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
    )
    return relay


def _make_bridge() -> None:
    """The pods' bridge with its gateway address, made before any pod so that servers
    for pods can listen on the gateway from the start."""
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    prefix = POD_SUBNET.split("/")[1]
    subprocess.run(["ip", "addr", "replace", f"{GATEWAY}/{prefix}", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def _pod_cgroup_pids() -> set[int]:
    pids = set()
    for procs in Path("/sys/fs/cgroup/pids/kubepods").rglob("cgroup.procs"):
        pids.update(int(line) for line in procs.read_text().split())
    return pids


def _kill_pod_processes() -> None:
    """Ends every container process, by pid from the pods' cgroups."""
    for _ in range(20):
        pids = _pod_cgroup_pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _kill_shims(containerd_address: Path) -> None:
    """containerd's shims, found by the address of this node's containerd on their command line."""
    marker = f"-address\0{containerd_address}\0".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


def _network_namespaces() -> set[str]:
    return {path.name for path in NETNS_DIR.glob("*")}


def _remove_pod_network(netns_before: set[str]) -> None:
    """The bridge, and the pods' network namespaces that containerd had no chance to
    remove (their veth ends go with them)."""
    for netns in _network_namespaces() - netns_before:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def clear_leftovers(root: Path, netns_before: set[str]) -> None:
    """What a stopped node in `root` leaves behind: a stopped kubelet does not stop its
    pods, containerd's shims outlive containerd, and the volumes' and containers' mounts,
    kube-proxy's rules, the pods' network namespaces and the bridge stay. This machine
    runs no other node or proxy."""
    _kill_pod_processes()
    _kill_shims(root / CONTAINERD_SOCKET)
    _unmount_under(root)
    subprocess.run([str(binaries.binary("kube-proxy")), "--cleanup"], capture_output=True)
    _remove_pod_network(netns_before)


def _unmount_under(root: Path) -> None:
    """Every mount point in `root`, deepest first, so the folder can be removed."""
    top = str(root.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p == top or p.startswith(top + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)


def start_node(plane: ControlPlane, root: Path, logs: Path, images: list[Image], die_with_parent: bool = True) -> Node:
    """Starts containerd, a kubelet that registers as NODE_NAME, kube-proxy and the API
    server's relay; returns once the node is Ready with `images` loaded."""
    require_root("the real node (containerd, a bridge, network namespaces, iptables)")
    root.mkdir(parents=True, exist_ok=True)
    start = {"die_with_parent": die_with_parent}
    node = Node(NODE_NAME, GATEWAY, root, netns_before=_network_namespaces())
    pause = next(image for image in images if "/pause:" in image.name)
    _make_bridge()
    try:
        containerd = Component("containerd", ["containerd", "--config", str(_containerd_config(root, pause))], logs)
        node.components.append(containerd.start(**start))
        containerd.wait_until(lambda: node.ctr("version", timeout=5).returncode == 0, timeout=30)
        for image in images:
            node.load(image)
        kubelet = Component(
            "kubelet",
            [
                str(binaries.binary("kubelet")),
                "--config",
                str(_kubelet_config(root)),
                "--kubeconfig",
                str(plane.kubeconfig),
                "--container-runtime-endpoint",
                f"unix://{node.containerd_address}",
                "--root-dir",
                str(root / "kubelet"),
                "--cert-dir",
                str(root / "kubelet-pki"),
                "--hostname-override",
                NODE_NAME,
                "--node-ip",
                GATEWAY,
            ],
            logs,
        )
        node.components.append(kubelet.start(**start))
        kubelet.wait_until(lambda: is_ready(plane.get("node", NODE_NAME)), timeout=120, what="registering a Ready node")
        proxy_config, proxy_health = _kube_proxy_config(root, plane.kubeconfig)
        proxy = Component("kube-proxy", [str(binaries.binary("kube-proxy")), "--config", str(proxy_config)], logs)
        node.components.append(proxy.start(**start))
        proxy.wait_until(
            lambda: urllib.request.urlopen(proxy_health, timeout=2).status == 200, timeout=60, what="syncing its rules"
        )
        node.components.append(_relay_api_server(plane, logs, **start))
    except BaseException:
        node.stop()
        raise
    return node
