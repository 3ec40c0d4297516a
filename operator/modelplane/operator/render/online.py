"""Online mode: a Deployment of HTTP servers, a Service in front, and an autoscaler."""

from __future__ import annotations

from typing import cast

from modelplane.contract import Command, Env
from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.render import network_policy
from modelplane.operator.render.common import MODEL_VERSION_LABEL, RenderSettings, selector_labels
from modelplane.operator.render.pod import env_var, http_probes, model_env, pod_template
from modelplane.operator.spec import Autoscaling, Online, ResolvedModel

ROLE = "online"
PORT_NAME = "http"
# A Service stops routing to a terminating pod only once kube-proxy (or a load balancer)
# has seen its endpoint go; the server keeps listening that long before it drains, so no
# request meets a closed port during a rollout or an eviction.
DRAIN_SECONDS = 5


def settings_of(deployment: ModelDeployment) -> Online:
    return deployment.spec.online or Online()


def endpoint(deployment: ModelDeployment) -> str:
    """The Service's in-cluster address, as status reports it."""
    namespace = deployment.namespace or "default"
    return f"http://{deployment.name}.{namespace}.svc:{settings_of(deployment).port}"


def pod_labels(deployment: ModelDeployment, model: ResolvedModel, role: str) -> dict[str, str]:
    return {**selector_labels(deployment, role), MODEL_VERSION_LABEL: model.version}


TRACK_LABEL = "modelplane.io/track"
CANARY = "canary"


def canary_name(deployment: ModelDeployment) -> str:
    return f"{deployment.name}-{CANARY}"


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for a canary of `weight` percent: whole replicas, at
    least one of each, so the share is only approximate at small counts."""
    canary = max(1, round(total * weight / 100))
    return max(1, total - canary), canary


def render(
    deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings, canary: ResolvedModel | None = None
) -> list[Object]:
    """With `canary`, a second Deployment runs that version beside `model` on a share of
    the replicas; the Service selects both, so traffic splits by replica ratio."""
    online = settings_of(deployment)
    total = online.autoscaling.min_replicas if online.autoscaling else online.replicas
    stable_replicas, canary_replicas = split_replicas(total, deployment.spec.rollout.canary.weight)
    # Replicas are left out under an autoscaler, which owns the stable count.
    replicas = None if online.autoscaling else (stable_replicas if canary else online.replicas)
    children = []
    if settings.network_policy:
        # First, so that a pod never runs before the policy that guards it.
        children.append(
            network_policy.render(
                deployment.name, selector_labels(deployment, ROLE), online.port, settings.network_policy
            )
        )
    children.append(_deployment(deployment, deployment.name, model, settings, replicas, {}))
    if canary is not None:
        children.append(
            _deployment(deployment, canary_name(deployment), canary, settings, canary_replicas, {TRACK_LABEL: CANARY})
        )
    children.append(_service(deployment, online))
    if online.autoscaling:
        children.append(_autoscaler(deployment, online))
    return children


def _deployment(
    deployment: ModelDeployment,
    name: str,
    model: ResolvedModel,
    settings: RenderSettings,
    replicas: int | None,
    track: dict[str, str],
) -> Object:
    online = settings_of(deployment)
    env = [
        *model_env(deployment, model, settings),
        env_var(Env.PORT, online.port),
        env_var(Env.MAX_BATCH_SIZE, online.batching.max_batch_size),
        env_var(Env.MAX_BATCH_WAIT_MS, online.batching.max_latency_ms),
        env_var(Env.UI, str(online.ui).lower()),
    ]
    template = pod_template(
        deployment,
        settings,
        [Command.serve.value],
        env,
        {**pod_labels(deployment, model, ROLE), **track},
        ports=[{"name": PORT_NAME, "containerPort": online.port, "protocol": "TCP"}],
        probes=http_probes(PORT_NAME),
        lifecycle={"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    )
    # The canary's selector is the stable one and more; the stable Deployment's
    # ReplicaSets select by pod-template-hash too, so neither adopts the other's pods.
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": track},
        "spec": {
            **({} if replicas is None else {"replicas": replicas}),
            "selector": {"matchLabels": {**selector_labels(deployment, ROLE), **track}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": deployment.spec.rollout.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }


def _service(deployment: ModelDeployment, online: Online) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": deployment.name},
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(deployment, ROLE),
            "ports": [{"name": PORT_NAME, "port": online.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def _autoscaler(deployment: ModelDeployment, online: Online) -> Object:
    scaling = cast(Autoscaling, online.autoscaling)  # made only with autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": deployment.name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }
