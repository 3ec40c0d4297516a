"""Builds and caches the test bed's Go binaries: Kubernetes, etcd, kwok and Helm; and
fetches Apache Kafka's jars from Maven Central.

The binaries are built from their Go modules (the machine has no other way to get them),
once per pinned version set, into a folder outside the clone so that a second run, or a
fresh clone on the same machine, reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

K8S_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v4.3.1"
KEDA_VERSION = "v2.21.0"  # only its ScaledObject CRD, which the module ships

K8S_MODULE = Path(__file__).parent / "k8s"
ETCD_MODULE = Path(__file__).parent / "etcd"
KAFKA_POM = Path(__file__).parent / "kafka" / "pom.xml"
K8S_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy")
KWOK_STAGES = ("node/fast", "node/heartbeat", "pod/fast")


def cache_dir() -> Path:
    """The folder for this version set; a change to a pinned Go module gives a new one."""
    root = Path(os.environ.get("MODELPLANE_TESTBED_CACHE", Path.home() / ".cache/modelplane/testbed"))
    pins = hashlib.sha256(b"".join((m / "go.sum").read_bytes() for m in (K8S_MODULE, ETCD_MODULE))).hexdigest()[:8]
    return root / f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_helm-{HELM_VERSION}_{pins}"


def binary(name: str) -> Path:
    return cache_dir() / "bin" / name


def kafka_libs() -> Path:
    """The folder of Kafka's jars, one per version of the pom that lists them."""
    pins = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()[:8]
    return cache_dir().parent / f"kafka-libs_{pins}"


def _fetch_kafka() -> float | None:
    """Copies Kafka and its runtime dependencies out of Maven Central, unless cached."""
    libs = kafka_libs()
    if libs.exists():
        return None
    started = time.monotonic()
    partial = libs.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    partial.rename(libs)
    return time.monotonic() - started


def keda_scaled_object_crd() -> Path:
    """KEDA's ScaledObject CRD, out of its Go module (the module proxy is the way to it here)."""
    crd = cache_dir() / f"keda-{KEDA_VERSION}_scaledobjects.yaml"
    if not crd.exists():
        listing = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/kedacore/keda/v2@{KEDA_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        module = Path(json.loads(listing.stdout)["Dir"])
        shutil.copyfile(module / "config" / "crd" / "bases" / "keda.sh_scaledobjects.yaml", crd)
    return crd


def kwok_stage_dir() -> Path:
    return cache_dir() / "kwok-stages"


def _version_ldflags() -> str:
    major, minor, _ = K8S_VERSION.lstrip("v").split(".")
    values = {"gitVersion": K8S_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = [
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    ]
    return " ".join(["-s", "-w", *flags])


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(["go", *args], cwd=cwd, check=True, env={**os.environ, **(env or {})})


def _build_k8s(name: str, out: Path) -> None:
    _go(["build", "-trimpath", "-ldflags", _version_ldflags(), "-o", str(out), f"./cmd/{name}"], K8S_MODULE)


def _go_install(package: str, out: Path, ldflags: str = "-s -w") -> None:
    with tempfile.TemporaryDirectory() as gobin:
        # Outside any module, so the tool's own go.mod decides its dependencies.
        _go(["install", "-trimpath", "-ldflags", ldflags, package], Path(gobin), {"GOBIN": gobin})
        built_name = package.split("@")[0].rsplit("/", 1)[-1]
        shutil.move(str(Path(gobin) / built_name), out)


def _module_dir(module: str) -> Path:
    listing = subprocess.run(
        ["go", "mod", "download", "-json", module], check=True, capture_output=True, text=True
    ).stdout
    return Path(json.loads(listing)["Dir"])


def _build_kwok(out: Path) -> None:
    module = f"sigs.k8s.io/kwok@{KWOK_VERSION}"
    _go_install(f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}", out)
    stages = kwok_stage_dir()
    stages.mkdir(parents=True, exist_ok=True)
    for stage in KWOK_STAGES:
        for source in (_module_dir(module) / "kustomize/stage" / stage).glob("*.yaml"):
            if source.name != "kustomization.yaml":
                shutil.copyfile(source, stages / f"{stage.replace('/', '-')}-{source.name}")


def _build_helm(out: Path) -> None:
    _go_install(
        f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}",
        out,
        f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
    )


def _build_etcd(out: Path) -> None:
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."], ETCD_MODULE)


def _builders() -> dict[str, callable]:
    builders = {"etcd": _build_etcd}
    builders.update({name: (lambda out, name=name: _build_k8s(name, out)) for name in K8S_COMPONENTS})
    builders["kwok"] = _build_kwok
    builders["helm"] = _build_helm
    return builders


def ensure_built(log=print) -> dict[str, float]:
    """Builds whatever is missing; returns seconds per binary built (empty when all cached)."""
    bin_dir = cache_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    took = {}
    for name, build in _builders().items():
        out = bin_dir / name
        if out.exists():
            continue
        log(f"building {name} ...")
        started = time.monotonic()
        partial = out.with_suffix(".partial")
        build(partial)
        partial.rename(out)
        took[name] = time.monotonic() - started
        log(f"built {name} in {took[name]:.0f} s")
    keda_scaled_object_crd()
    if (fetched := _fetch_kafka()) is not None:
        took["kafka"] = fetched
        log(f"fetched Kafka's jars in {fetched:.0f} s")
    return took


if __name__ == "__main__":
    built = ensure_built(lambda line: print(line, flush=True))
    print(f"test bed binaries in {cache_dir() / 'bin'}" + ("" if built else " (all cached)"))
    sys.exit(0)
