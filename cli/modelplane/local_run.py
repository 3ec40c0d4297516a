"""`modelplane run -f FILE`: a ModelDeployment as local processes, with no cluster.

The manifest is checked with the CRD's own rules and rendered by the operator's own
rendering; the workload's container command and environment then run here, changed only
where a laptop must differ from a pod: the model cache, loopback, the port, and one
process per batch shard in place of an Indexed Job's pods.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from modelplane.contract import Env

if TYPE_CHECKING:
    from modelplane.operator.manifest import ModelDeployment
    from modelplane.operator.spec import ModelReference, ResolvedModel

LOCAL_REGISTRY = Path(".modelplane") / "mlflow.db"  # where `modelplane demo` registers its model
# Variables that make the local interpreter, the dynamic linker or a shell run code of
# their choosing: harmless in a pod's own container, not in the user's session.
_UNSAFE_ENV_PREFIXES = ("PYTHON", "LD_", "DYLD_")
_UNSAFE_ENV = {"BROWSER", "BASH_ENV", "ENV", "PATH", "PERL5OPT", "PERL5LIB", "NODE_OPTIONS", "SHELLOPTS"}


class RunError(Exception):
    """The manifest cannot run here; the message names the field or flag to change."""


@dataclass(frozen=True)
class LocalWorkload:
    name: str
    mode: str
    model_uri: str
    args: list[str]
    env: dict[str, str]
    shards: int = 1
    schedule: str | None = None


def main(path: Path, registry: str | None, port: int | None, follow: bool, drop_unsafe_env: bool = False) -> int:
    try:
        workload = prepare(path, registry, port, drop_unsafe_env)
        if workload.mode == "online":
            return _run_online(workload)
        if workload.mode == "batch":
            return _run_batch(workload, follow)
        return _run_streaming(workload)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def prepare(path: Path, registry: str | None, port: int | None, drop_unsafe_env: bool = False) -> LocalWorkload:
    """The workload `path` renders to, with its command and environment made local."""
    from modelplane.operator.manifest import ManifestError, load_manifests

    try:
        deployments = load_manifests(path)
    except ManifestError as error:
        raise RunError(str(error)) from None
    if len(deployments) != 1:
        raise RunError(f"{path} holds {len(deployments)} ModelDeployments; run one at a time")
    return local_workload(deployments[0], registry, port, drop_unsafe_env)


def local_workload(
    deployment: ModelDeployment, registry: str | None, port: int | None, drop_unsafe_env: bool = False
) -> LocalWorkload:
    from modelplane.operator.render import RenderSettings, render
    from modelplane.operator.render.common import WORKLOAD_KINDS

    registry_uri = _registry_uri(deployment, registry)
    model = _resolve(deployment.spec.model, registry_uri)
    children = render(deployment, model, RenderSettings(serving_image="local", registry_uri=registry_uri))
    workload = next(child for child in children if child["kind"] in WORKLOAD_KINDS)
    pod = (workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"])["template"]
    container = pod["spec"]["containers"][0]
    # Values only: a pod's secretRef has no local twin, the shell's MLflow variables apply.
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    for name in _unsafe_env(deployment, drop_unsafe_env):
        env.pop(name, None)
    env.pop("HOME", None)
    env[Env.MODEL_CACHE] = str(Path.home() / ".cache" / "modelplane" / "models")
    env["MLFLOW_TRACKING_URI"] = registry_uri
    mode = deployment.spec.mode.value
    if mode == "online":
        env[Env.HOST] = "127.0.0.1"
        if port is not None:
            env[Env.PORT] = str(port)
    if mode == "streaming":
        env[Env.METRICS_HOST] = "127.0.0.1"
        if port is not None:
            env[Env.METRICS_PORT] = str(port)
    batch = deployment.spec.batch
    return LocalWorkload(
        deployment.name,
        mode,
        model.uri,
        container["args"],
        env,
        shards=batch.parallelism if batch else 1,
        schedule=batch.schedule if batch else None,
    )


def _unsafe_env(deployment: ModelDeployment, drop: bool) -> list[str]:
    """The manifest's variables that would run code in this session: refused, or, with
    `drop`, named in a warning and left out."""
    unsafe = [
        (index, item["name"])
        for index, item in enumerate(deployment.spec.env or [])
        if isinstance(item.get("name"), str)
        and (item["name"].upper().startswith(_UNSAFE_ENV_PREFIXES) or item["name"].upper() in _UNSAFE_ENV)
    ]
    for index, name in unsafe:
        if not drop:
            raise RunError(
                f"spec.env[{index}] ({name}) would make programs on this machine run code the manifest "
                "chooses: remove it, or run with --drop-unsafe-env to leave it out"
            )
        print(
            f"warning: left out spec.env[{index}] ({name}), which would make programs on this machine run code "
            "the manifest chooses",
            file=sys.stderr,
        )
    return [name for _, name in unsafe]


def _registry_uri(deployment: ModelDeployment, registry: str | None) -> str:
    uri = registry or deployment.spec.model.registry.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if LOCAL_REGISTRY.exists():
        return f"sqlite:///{LOCAL_REGISTRY.resolve()}"
    raise RunError(
        "no registry: set spec.model.registry.uri, --registry or MLFLOW_TRACKING_URI "
        "(or run `modelplane demo` first for a local one)"
    )


def _resolve(reference: ModelReference, registry_uri: str) -> ResolvedModel:
    """The version the manifest names, or its alias points at, in the registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from modelplane.operator.spec import ResolvedModel

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    try:
        if reference.alias:
            found = client.get_model_version_by_alias(reference.name, reference.alias)
        else:
            # The CRD's rules hold exactly one of version and alias.
            found = client.get_model_version(reference.name, cast(str, reference.version))
    except MlflowException as error:
        field = "spec.model.alias" if reference.alias else "spec.model.version"
        raise RunError(f"{field}: {error.message.splitlines()[0]} (registry {registry_uri})") from None
    return ResolvedModel(found.name, str(found.version), found.run_id, found.source)


def _command(workload: LocalWorkload) -> list[str]:
    return [sys.executable, "-m", "modelplane.cli", *workload.args]


@contextmanager
def serving(workload: LocalWorkload, ready_timeout: float = 180, quiet: bool = False) -> Iterator[str]:
    """Runs an online workload until the block ends; yields its URL once ready."""
    server = subprocess.Popen(
        _command(workload), env={**os.environ, **workload.env}, stderr=subprocess.DEVNULL if quiet else None
    )
    url = f"http://127.0.0.1:{workload.env.get(Env.PORT, '8080')}"
    try:
        deadline = time.monotonic() + ready_timeout
        while not _answers(f"{url}/readyz"):
            if server.poll() is not None:
                raise RunError(f"the server stopped with exit code {server.returncode}; its log is above")
            if time.monotonic() > deadline:
                raise RunError(f"the server did not become ready within {ready_timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        _stop(server)


def _run_online(workload: LocalWorkload) -> int:
    with serving(workload) as url:
        print(f"{workload.name}: serving {workload.model_uri} at {url} (Ctrl-C stops)", flush=True)
        print(f"  try: curl -s {url}/v2/models/{workload.model_uri.split('/')[1]}", flush=True)
        if workload.env.get(Env.UI) != "false":
            print(f"  or open its prediction page: {url}/ (the API: {url}/docs)", flush=True)
        with suppress(KeyboardInterrupt):
            _wait_for_interrupt()
    print(f"{workload.name}: stopped", flush=True)
    return 0


def _run_streaming(workload: LocalWorkload) -> int:
    """One consumer in the foreground; Ctrl-C drains it as SIGTERM drains a pod."""
    consumer = subprocess.Popen(_command(workload), env={**os.environ, **workload.env})
    print(
        f"{workload.name}: consuming {workload.env[Env.SOURCE]} with {workload.model_uri}, writing to "
        f"{workload.env[Env.SINK]}; metrics at "
        f"http://127.0.0.1:{workload.env[Env.METRICS_PORT]}/metrics (Ctrl-C stops)",
        flush=True,
    )
    try:
        _interrupt_on_signals()
        code = consumer.wait()
    except KeyboardInterrupt:
        _stop(consumer)
        code = consumer.returncode
    print(f"{workload.name}: stopped", flush=True)
    return code


def _run_batch(workload: LocalWorkload, follow: bool) -> int:
    if not follow:
        return _batch_once(workload)
    if not workload.schedule:
        raise RunError("--follow needs spec.batch.schedule; without one a batch runs once")
    from croniter import croniter

    schedule = croniter(workload.schedule, time.time())
    try:
        _interrupt_on_signals()
        while True:
            due = schedule.get_next(float)
            print(f"{workload.name}: next run at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(due))}", flush=True)
            time.sleep(max(0.0, due - time.time()))
            _batch_once(workload)
    except KeyboardInterrupt:
        print(f"{workload.name}: stopped", flush=True)
        return 0


def _batch_once(workload: LocalWorkload) -> int:
    """One run: a process per shard, as an Indexed Job runs a pod per completion index."""
    shards = [
        subprocess.Popen(_command(workload), env={**os.environ, **workload.env, Env.JOB_COMPLETION_INDEX: str(i)})
        for i in range(workload.shards)
    ]
    try:
        codes = [shard.wait() for shard in shards]
    except KeyboardInterrupt:
        for shard in shards:
            _stop(shard)
        raise
    failed = [index for index, code in enumerate(codes) if code != 0]
    if failed:
        print(f"{workload.name}: shard(s) {', '.join(map(str, failed))} of {workload.shards} failed", file=sys.stderr)
        return 1
    print(f"{workload.name}: {workload.shards} shard(s) done; output in {workload.env[Env.OUTPUT]}", flush=True)
    return 0


def _wait_for_interrupt() -> None:
    _interrupt_on_signals()
    while True:
        time.sleep(3600)


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (as from a supervisor) both stop cleanly, even where SIGINT came
    in ignored: a shell without job control starts background commands so."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False
