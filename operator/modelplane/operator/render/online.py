"""Online mode: a Deployment of HTTP servers, a Service in front, and an autoscaler."""

from __future__ import annotations

from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.render.common import MODEL_VERSION_LABEL, RenderSettings, ResolvedModel, selector_labels
from modelplane.operator.render.pod import env_var, http_probes, model_env, pod_template
from modelplane.operator.spec import Online

ROLE = "online"
PORT_NAME = "http"


def settings_of(deployment: ModelDeployment) -> Online:
    return deployment.spec.online or Online()


def endpoint(deployment: ModelDeployment) -> str:
    """The Service's in-cluster address, as status reports it."""
    namespace = deployment.namespace or "default"
    return f"http://{deployment.name}.{namespace}.svc:{settings_of(deployment).port}"


def pod_labels(deployment: ModelDeployment, model: ResolvedModel, role: str) -> dict[str, str]:
    return {**selector_labels(deployment, role), MODEL_VERSION_LABEL: model.version}


def render(deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings) -> list[dict]:
    online = settings_of(deployment)
    env = [
        *model_env(deployment, model, settings),
        env_var("MODELPLANE_PORT", online.port),
        env_var("MODELPLANE_MAX_BATCH_SIZE", online.batching.max_batch_size),
        env_var("MODELPLANE_MAX_BATCH_WAIT_MS", online.batching.max_latency_ms),
    ]
    template = pod_template(
        deployment, settings, ["serve"], env, pod_labels(deployment, model, ROLE),
        ports=[{"name": PORT_NAME, "containerPort": online.port, "protocol": "TCP"}],
        probes=http_probes(PORT_NAME),
    )
    # Replicas are left out under an autoscaler, which owns the count.
    replicas = {} if online.autoscaling else {"replicas": online.replicas}
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment.name},
        "spec": {
            **replicas,
            "selector": {"matchLabels": selector_labels(deployment, ROLE)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": deployment.spec.rollout.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }
    children = [workload, _service(deployment, online)]
    if online.autoscaling:
        children.append(_autoscaler(deployment, online))
    return children


def _service(deployment: ModelDeployment, online: Online) -> dict:
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


def _autoscaler(deployment: ModelDeployment, online: Online) -> dict:
    scaling = online.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": deployment.name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization_percentage},
            }}],
        },
    }
