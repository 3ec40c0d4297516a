"""Container images for the test bed's real node, built without a daemon.

There is no image registry here, so every image is built from what the package
registries give: the pod sandbox's pause program from Go, a base with Python from
Debian's packages (debootstrap), and the project's serving and operator images from
their own Dockerfiles on that base, with buildah. Each image is saved as a docker-archive named by a hash of its
inputs, so a second run, or a fresh clone on the same machine, builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import binaries

REPO = Path(__file__).resolve().parents[2]
PAUSE_MODULE = Path(__file__).parent / "pause"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Package lists, caches and documentation: not part of an image users get (slim images
# leave them out the same way).
BASE_LEFT_OUT = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/locale",
    "usr/share/man",
    "usr/share/info",
)
# What the project's Dockerfiles copy (each lives in one of these folders).
PROJECT_INPUTS = ("pyproject.toml", "README.md", "cli", "operator", "serving")
# Package downloads during a build trust the machine's CAs; the bundle is mounted for the
# build only, never copied into an image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Image:
    name: str  # as containerd and a pod spec know it
    archive: Path  # a docker-archive that `ctr images import` takes

    @property
    def size_mb(self) -> float:
        return self.archive.stat().st_size / 1e6


def images_dir() -> Path:
    return binaries.cache_dir().parent / "images"


def _buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    storage = images_dir() / "storage"
    done = subprocess.run(
        [
            "buildah",
            "--root",
            str(storage / "root"),
            "--runroot",
            str(storage / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"buildah {args[0]} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
    return done


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


def _tree_bytes(root: Path, paths: tuple[str, ...]) -> list[bytes]:
    """The tracked files under `paths`, names and contents, so edits not yet committed
    count too."""
    listed = subprocess.run(["git", "ls-files", "-z", *paths], cwd=root, check=True, capture_output=True).stdout
    parts = []
    for name in sorted(filter(None, listed.decode().split("\0"))):
        path = root / name
        if path.is_file():
            parts += [name.encode(), path.read_bytes()]
    return parts


def require_root(what: str) -> None:
    """The node tier's parts run as root; say so plainly rather than fail deep inside them."""
    if os.geteuid() != 0:
        raise PermissionError(f"{what} needs root: run the node tier as root, or leave it out with -m 'not node'")


def _reference(name: str, tag: str) -> str:
    return f"localhost/modelplane-test/{name}:{tag}"


def _ensure(name: str, tag: str, build, log) -> Image:
    """The image `name:tag` from its archive, building and saving it first if missing."""
    reference = _reference(name, tag)
    archive = images_dir() / f"{name}-{tag}.tar"
    if not archive.exists():
        require_root(f"building the {name} image (buildah, debootstrap)")
        archive.parent.mkdir(parents=True, exist_ok=True)
        log(f"building image {reference} ...")
        started = time.monotonic()
        build(reference)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _buildah("push", reference, f"docker-archive:{partial}:{reference}")
        partial.rename(archive)
        log(f"built image {name} in {time.monotonic() - started:.0f} s, {archive.stat().st_size / 1e6:.0f} MB")
        _forget_older(name, archive)
    return Image(reference, archive)


def _forget_older(name: str, current: Path) -> None:
    """Removes the images of `name` that earlier inputs built: each is hundreds of MB in
    the archive and more in buildah's storage."""
    for stale in images_dir().glob(f"{name}-*.tar"):
        if stale != current:
            stale.unlink()
            _buildah("rmi", _reference(name, stale.stem.removeprefix(f"{name}-")), check=False)


def _in_storage(reference: str, archive: Path) -> str:
    """Makes sure a base image is in buildah's storage (a cached archive may outlive it)."""
    if _buildah("inspect", "--type", "image", reference, check=False).returncode != 0:
        _buildah("pull", f"docker-archive:{archive}")
    return reference


def _from_scratch(reference: str, add: list[tuple[str, str]], config: list[str]) -> None:
    container = _buildah("from", "scratch").stdout.strip()
    try:
        for source, destination in add:
            _buildah("add", container, source, destination)
        _buildah("config", *config, container)
        _buildah("commit", "--quiet", container, reference)
    finally:
        _buildah("rm", container)


def pause_image(log=print) -> Image:
    """The pod sandbox image: a static Go program that waits for SIGTERM."""
    source = (PAUSE_MODULE / "main.go").read_bytes()

    def build(reference: str) -> None:
        with tempfile.TemporaryDirectory() as work:
            program = Path(work) / "pause"
            subprocess.run(
                ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(program), "."],
                cwd=PAUSE_MODULE,
                check=True,
                env={**os.environ, "CGO_ENABLED": "0"},
            )
            _from_scratch(reference, [(str(program), "/pause")], ["--entrypoint", '["/pause"]', "--user", "65535"])

    return _ensure("pause", _digest(source, (PAUSE_MODULE / "go.mod").read_bytes()), build, log)


def base_image(log=print) -> Image:
    """Debian's minimal base with Python: what `python:3.11-slim` gives, from packages."""

    def build(reference: str) -> None:
        with tempfile.TemporaryDirectory(dir=images_dir()) as work:
            rootfs, tarball = Path(work) / "rootfs", Path(work) / "rootfs.tar"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                check=True,
                capture_output=True,
            )
            for leftover in BASE_LEFT_OUT:
                shutil.rmtree(rootfs / leftover, ignore_errors=True)
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
            _from_scratch(
                reference,
                [(str(tarball), "/")],
                ["--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--cmd", '["python3"]'],
            )

    return _ensure("base", _digest(DEBIAN_SUITE.encode(), *map(str.encode, BASE_PACKAGES + BASE_LEFT_OUT)), build, log)


def _from_dockerfile(name: str, dockerfile: Path, log) -> Image:
    """One of the project's images, from its Dockerfile on the Debian base."""
    base = base_image(log)

    def build(reference: str) -> None:
        _buildah(
            "bud",
            "--isolation",
            "chroot",
            "--layers=false",
            "--build-arg",
            f"BASE={_in_storage(base.name, base.archive)}",
            "--volume",
            f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "-f",
            str(dockerfile),
            "-t",
            reference,
            str(REPO),
        )

    return _ensure(name, _digest(base.name.encode(), *_tree_bytes(REPO, PROJECT_INPUTS)), build, log)


def serving_image(log=print) -> Image:
    """The generic serving container every ModelDeployment runs."""
    return _from_dockerfile("serving", REPO / "serving" / "Dockerfile", log)


def operator_image(log=print) -> Image:
    """The operator, as the Helm chart runs it."""
    return _from_dockerfile("operator", REPO / "operator" / "Dockerfile", log)


def run_in(image: Image, *argv: str) -> subprocess.CompletedProcess:
    """Runs a command in a container of `image`, as its configured user, without a node."""
    container = _buildah("from", "--pull-never", _in_storage(image.name, image.archive)).stdout.strip()
    try:
        return _buildah("run", "--isolation", "chroot", container, "--", *argv, check=False)
    finally:
        _buildah("rm", container)


def config_of(image: Image) -> dict:
    """The image's OCI configuration: user, entrypoint, environment."""
    return json.loads(_buildah("inspect", "--type", "image", image.name).stdout)["OCIv1"]["config"]
