"""A real Kubernetes control plane on 127.0.0.1, with kwok simulating the nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real programs,
so defaulting, validation (CEL included), RBAC, garbage collection, Deployment rollouts
and Job completion are the real thing. kwok plays the kubelet: it marks pods on its fake
nodes Running and Ready and completes pods that are meant to finish; nothing runs in them.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.testbed import binaries
from tests.testbed.process import Component, free_port

SERVICE_CIDR = "10.96.0.0/16"
FAKE_NODE_NAMES = ("kwok-node-0", "kwok-node-1")
# The test bed's stand-in for a model version whose pods fail their probes: kwok never
# makes pods serving it Ready. Tests register this model to watch a rollout fail.
UNREADY_MODEL_URI = "models:/never-ready/2"


class CommandFailed(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{' '.join(self.cmd[1:])!r} exited with {self.returncode}: {self.stderr.strip()}"


def _run(argv: list[str], input: str | None, check: bool, timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise CommandFailed(result.returncode, result.args, result.stdout, result.stderr)
    return result


@dataclass
class ControlPlane:
    root: Path
    server: str
    kubeconfig: Path
    ca_file: Path
    components: list[Component] = field(default_factory=list)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Runs the test bed's own kubectl; a failure raises with kubectl's error text."""
        argv = [str(binaries.binary("kubectl")), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        return _run(argv, input, check, timeout)

    def wait_established(self, crd: str, timeout: float = 30) -> None:
        """Waits until the API server serves a CRD. `kubectl wait` fails at once, not waits,
        when it reads the CRD before the API server has given it any condition."""
        deadline = time.monotonic() + timeout
        while (
            self.kubectl(
                "get", f"crd/{crd}", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
            ).stdout
            != "True"
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {crd} was not Established within {timeout:.0f} s")
            time.sleep(0.1)

    def helm(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        """Runs the test bed's own helm as the admin."""
        return _run([str(binaries.binary("helm")), "--kubeconfig", str(self.kubeconfig), *args], None, check, timeout)

    def apply(self, manifest: dict | list[dict], **kwargs) -> subprocess.CompletedProcess:
        documents = manifest if isinstance(manifest, list) else [manifest]
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), **kwargs)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        scope = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", kind, name, *scope, "-o", "json").stdout)

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that acts as the ServiceAccount, with a token from the TokenRequest API."""
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration", "2h").stdout.strip()
        path = self.root / f"kubeconfig-{namespace}-{name}"
        _write_kubeconfig(path, self.server, self.ca_file, f"{namespace}-{name}", token)
        return path

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()


def is_ready(obj: dict) -> bool:
    """A pod's or node's Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "testbed", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def _make_service_account_keys(pki: Path) -> tuple[Path, Path]:
    key, public = pki / "service-account.key", pki / "service-account.pub"
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(public)], check=True, capture_output=True
        )
    return key, public


def _https_ok(url: str, ca_file: Path, token: str) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=context, timeout=2) as response:
        return response.status == 200


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def _start_etcd(root: Path, logs: Path, **start) -> tuple[Component, str]:
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    etcd = Component(
        "etcd",
        [
            str(binaries.binary("etcd")),
            "--name",
            "testbed",
            "--unsafe-no-fsync",
            "--data-dir",
            str(root / "etcd"),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"testbed={peer_url}",
            "--listen-metrics-urls",
            f"http://127.0.0.1:{free_port()}",
        ],
        logs,
    ).start(**start)
    etcd.wait_until(lambda: _http_ok(f"{url}/health"), timeout=30)
    return etcd, url


def _start_apiserver(root: Path, logs: Path, etcd_url: str, admin_token: str, **start) -> tuple[Component, str, Path]:
    pki = root / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    sa_key, sa_public = _make_service_account_keys(pki)
    tokens = pki / "tokens.csv"
    tokens.write_text(f'{admin_token},testbed-admin,testbed-admin,"system:masters"\n')
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    apiserver = Component(
        "kube-apiserver",
        [
            str(binaries.binary("kube-apiserver")),
            "--etcd-servers",
            etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(port),
            "--cert-dir",
            str(pki / "apiserver"),
            "--token-auth-file",
            str(tokens),
            "--authorization-mode",
            "RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            str(sa_public),
            "--service-account-signing-key-file",
            str(sa_key),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--endpoint-reconciler-type",
            "none",
        ],
        logs,
    ).start(**start)
    serving_chain = pki / "apiserver" / "apiserver.crt"
    apiserver.wait_until(lambda: _https_ok(f"{server}/readyz", serving_chain, admin_token), timeout=90)
    # The self-signed chain is the serving certificate, then the CA that signed it;
    # clients and the root-CA publisher want the CA alone.
    ca_file = pki / "ca.crt"
    ca_file.write_text(
        "-----BEGIN CERTIFICATE-----" + serving_chain.read_text().split("-----BEGIN CERTIFICATE-----")[-1]
    )
    return apiserver, server, ca_file


def _controller_args(kubeconfig: Path) -> list[str]:
    # No client-side rate limit (as kwokctl does): at the default 20 requests/s the
    # controllers, not the code under test, would set the pace of any test at scale.
    return [
        "--kubeconfig",
        str(kubeconfig),
        "--leader-elect=false",
        "--bind-address",
        "127.0.0.1",
        "--secure-port",
        str(free_port()),
        "--kube-api-qps=5000",
        "--kube-api-burst=10000",
    ]


def _fake_node(name: str) -> dict:
    capacity = {"cpu": "1000", "memory": "4Ti", "pods": "5000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def start_control_plane(root: Path, logs: Path, die_with_parent: bool = True) -> ControlPlane:
    """Starts every component in order; on any failure stops what started and raises."""
    root.mkdir(parents=True, exist_ok=True)
    start = {"die_with_parent": die_with_parent}
    admin_token = secrets.token_hex(16)
    plane = ControlPlane(root=root, server="", kubeconfig=root / "kubeconfig", ca_file=root)
    try:
        etcd, etcd_url = _start_etcd(root, logs, **start)
        plane.components.append(etcd)
        apiserver, plane.server, plane.ca_file = _start_apiserver(root, logs, etcd_url, admin_token, **start)
        plane.components.append(apiserver)
        _write_kubeconfig(plane.kubeconfig, plane.server, plane.ca_file, "testbed-admin", admin_token)
        sa_key = root / "pki" / "service-account.key"
        plane.components.append(
            Component(
                "kube-controller-manager",
                [
                    str(binaries.binary("kube-controller-manager")),
                    *_controller_args(plane.kubeconfig),
                    "--service-account-private-key-file",
                    str(sa_key),
                    "--root-ca-file",
                    str(plane.ca_file),
                    "--use-service-account-credentials=false",
                ],
                logs,
            ).start(**start)
        )
        plane.components.append(
            Component(
                "kube-scheduler",
                [
                    str(binaries.binary("kube-scheduler")),
                    *_controller_args(plane.kubeconfig),
                ],
                logs,
            ).start(**start)
        )
        stages = _kwok_stages(root)
        plane.components.append(
            Component(
                "kwok",
                [
                    str(binaries.binary("kwok")),
                    "--kubeconfig",
                    str(plane.kubeconfig),
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--server-address",
                    f"127.0.0.1:{free_port()}",
                    "--cidr",
                    "10.244.0.0/16",
                    "--node-ip",
                    "127.0.0.1",
                    *[f"--config={stage}" for stage in stages],
                ],
                logs,
            ).start(**start)
        )
        plane.apply([_fake_node(name) for name in FAKE_NODE_NAMES])
        _wait_for_scheduling(plane)
    except BaseException:
        plane.stop()
        raise
    return plane


def _kwok_stages(root: Path) -> list[Path]:
    """kwok's own stages, with pods serving UNREADY_MODEL_URI left out of the one that
    makes pods Ready."""
    stages = []
    for source in sorted(binaries.kwok_stage_dir().glob("*.yaml")):
        stage = yaml.safe_load(source.read_text())
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["selector"]["matchExpressions"].append(
                {
                    "key": '.spec.containers.[].env.[] | select( .name == "MODELPLANE_MODEL" ) | .value',
                    "operator": "NotIn",
                    "values": [UNREADY_MODEL_URI],
                }
            )
        stages.append(root / "kwok-stages" / source.name)
        stages[-1].parent.mkdir(parents=True, exist_ok=True)
        stages[-1].write_text(yaml.safe_dump(stage))
    return stages


def _wait_for_scheduling(plane: ControlPlane) -> None:
    """Ready means a pod can be placed: the fake nodes are Ready and the default
    ServiceAccount exists (its controller creates it; pods are refused without it)."""

    def nodes_ready() -> bool:
        nodes = json.loads(plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return len([n for n in nodes if is_ready(n)]) == len(FAKE_NODE_NAMES)

    def default_service_account() -> bool:
        return plane.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    kwok, controller_manager = plane.components[-1], plane.components[2]
    kwok.wait_until(nodes_ready, timeout=60, what="marking the fake nodes Ready")
    controller_manager.wait_until(default_service_account, timeout=60, what="creating the default ServiceAccount")
