"""The pod template every mode runs: the serving image, its command and environment
(the whole contract with the serving runtime), and a restricted security context."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.contract import Env
from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.render.common import TEMPLATE_HASH_ANNOTATION, RenderSettings, content_hash
from modelplane.operator.spec import ResolvedModel

CONTAINER_NAME = "model"
MODEL_CACHE_DIR = "/var/cache/modelplane"
SCRATCH_DIR = "/tmp"
# Any non-root id works: the image's files are world-readable and nothing writes to them.
RUN_AS_USER = 10001


def env_var(name: str, value: object) -> Object:
    return {"name": name, "value": str(value)}


def model_env(deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings) -> list[Object]:
    """Where the model is and how to fetch it: the pinned version, never the alias, so a
    rescheduled pod cannot change version behind the operator's back."""
    env = [
        env_var(Env.MODEL, model.uri),
        env_var(Env.MODEL_CACHE, MODEL_CACHE_DIR),
        # MLflow and pip write under $HOME; the root filesystem is read-only.
        env_var("HOME", SCRATCH_DIR),
    ]
    registry_uri = deployment.spec.model.registry.uri or settings.registry_uri
    if registry_uri:
        env.append(env_var("MLFLOW_TRACKING_URI", registry_uri))
    if not any(item.get("name") == Env.ALLOW_PICKLE for item in deployment.spec.env or ()):
        # Said outright, so a key of the registry's Secret (envFrom, which `env` overrides)
        # cannot turn it on; spec.env may, where the tenancy policy lets it.
        env.append(env_var(Env.ALLOW_PICKLE, "false"))
    return env


def pod_template(
    deployment: ModelDeployment,
    settings: RenderSettings,
    args: list[str],
    env: list[Object],
    labels: dict[str, str],
    ports: Sequence[Object] = (),
    probes: Object | None = None,
    lifecycle: Object | None = None,
    restart_policy: str = "Always",
    termination_grace_seconds: int | None = None,
) -> Object:
    spec = deployment.spec
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image or settings.serving_image,
        "args": args,
        "env": [*env, *(spec.env or [])],
        "ports": list(ports),
        "volumeMounts": [
            {"name": "model-cache", "mountPath": MODEL_CACHE_DIR},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        **(probes or {}),
    }
    if lifecycle:
        container["lifecycle"] = lifecycle
    # The ModelDeployment's own resources replace the operator's default whole: a
    # default merged into them could hold a request above a limit they set.
    resources = spec.resources if spec.resources is not None else settings.resources
    if resources:
        container["resources"] = resources
    secret = spec.model.registry.secret_ref
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret.name}}]
    if not container["ports"]:
        del container["ports"]
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": restart_policy,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "model-cache", "emptyDir": {}},
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    if termination_grace_seconds is not None:
        pod_spec["terminationGracePeriodSeconds"] = termination_grace_seconds
    for field, value in (
        ("nodeSelector", spec.node_selector),
        ("tolerations", spec.tolerations),
        ("affinity", spec.affinity),
    ):
        if value:
            pod_spec[field] = value
    template: Object = {"metadata": {"labels": labels}, "spec": pod_spec}
    # A hash of everything above: the operator compares it instead of diffing server-
    # defaulted objects, so an unchanged spec causes no write.
    template["metadata"]["annotations"] = {TEMPLATE_HASH_ANNOTATION: content_hash(template)}
    return template


def http_probes(port_name: str) -> Object:
    """A startup probe that allows ten minutes for the model download and load, so the
    liveness probe never kills a slow load; readiness follows the loaded model.

    Each probe waits for its answer as long as its period, not Kubernetes' default of one
    second: a server busy taking in large requests answers late, and a probe that gave up
    after a second would take a loaded pod out of its Service, or restart it. A probe
    then fails only when no answer came before the next one was due."""

    def probe(path: str, period: int, failures: int) -> Object:
        return {
            "httpGet": {"path": path, "port": port_name},
            "periodSeconds": period,
            "timeoutSeconds": period,
            "failureThreshold": failures,
        }

    return {
        "startupProbe": probe("/readyz", 2, 300),
        "readinessProbe": probe("/readyz", 5, 2),
        "livenessProbe": probe("/healthz", 10, 3),
    }
