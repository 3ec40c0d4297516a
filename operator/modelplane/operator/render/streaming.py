"""Streaming mode: a Deployment of consumers sharing one consumer group."""

from __future__ import annotations

from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.render.common import MODEL_VERSION_LABEL, RenderSettings, ResolvedModel, selector_labels
from modelplane.operator.render.pod import env_var, http_probes, model_env, pod_template

ROLE = "streaming"
METRICS_PORT = 9090
# Long enough to finish the in-flight batch and commit it after SIGTERM.
DRAIN_SECONDS = 60


def consumer_group(deployment: ModelDeployment) -> str:
    return deployment.spec.streaming.consumer_group or f"{deployment.namespace or 'default'}.{deployment.name}"


def render(deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings) -> list[dict]:
    streaming = deployment.spec.streaming
    env = [
        *model_env(deployment, model, settings),
        env_var("MODELPLANE_SOURCE", streaming.source),
        env_var("MODELPLANE_SINK", streaming.sink),
        env_var("MODELPLANE_CONSUMER_GROUP", consumer_group(deployment)),
        env_var("MODELPLANE_METRICS_PORT", METRICS_PORT),
    ]
    if streaming.dead_letter:
        env.append(env_var("MODELPLANE_DEAD_LETTER", streaming.dead_letter))
    labels = {**selector_labels(deployment, ROLE), MODEL_VERSION_LABEL: model.version}
    template = pod_template(
        deployment, settings, ["stream"], env, labels,
        ports=[{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        probes=http_probes("metrics"),
        termination_grace_seconds=DRAIN_SECONDS,
    )
    return [{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{deployment.name}-stream"},
        "spec": {
            "replicas": streaming.replicas,
            "selector": {"matchLabels": selector_labels(deployment, ROLE)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": deployment.spec.rollout.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }]
