"""Streaming mode: a Deployment of consumers sharing one consumer group."""

from __future__ import annotations

from typing import cast

from modelplane.contract import Command, Env, StreamAddress
from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.render import network_policy
from modelplane.operator.render.common import MODEL_VERSION_LABEL, RenderSettings, selector_labels
from modelplane.operator.render.pod import env_var, http_probes, model_env, pod_template
from modelplane.operator.spec import LagAutoscaling, ResolvedModel, Streaming

ROLE = "streaming"
METRICS_PORT = 9090
# Long enough to finish the in-flight batch and commit it after SIGTERM.
DRAIN_SECONDS = 60


def consumer_group(deployment: ModelDeployment) -> str:
    # spec.streaming is required in streaming mode (the CRD's rules), the only mode rendered here.
    streaming = cast(Streaming, deployment.spec.streaming)
    return streaming.consumer_group or f"{deployment.namespace or 'default'}.{deployment.name}"


def render(deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings) -> list[Object]:
    streaming = cast(Streaming, deployment.spec.streaming)
    env = [
        *model_env(deployment, model, settings),
        env_var(Env.SOURCE, streaming.source),
        env_var(Env.SINK, streaming.sink),
        env_var(Env.CONSUMER_GROUP, consumer_group(deployment)),
        env_var(Env.METRICS_PORT, METRICS_PORT),
    ]
    if streaming.dead_letter:
        env.append(env_var(Env.DEAD_LETTER, streaming.dead_letter))
    labels = {**selector_labels(deployment, ROLE), MODEL_VERSION_LABEL: model.version}
    template = pod_template(
        deployment,
        settings,
        [Command.stream.value],
        env,
        labels,
        ports=[{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        probes=http_probes("metrics"),
        termination_grace_seconds=DRAIN_SECONDS,
    )
    scaled = streaming.autoscaling is not None and settings.scaled_objects
    consumers = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload_name(deployment)},
        "spec": {
            # Under a ScaledObject, KEDA's autoscaler owns the count.
            **({} if scaled else {"replicas": streaming.replicas}),
            "selector": {"matchLabels": selector_labels(deployment, ROLE)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": deployment.spec.rollout.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }
    children = [consumers, _scaled_object(deployment)] if scaled else [consumers]
    if settings.network_policy:
        # First, so that a pod never runs before the policy that guards it.
        children.insert(
            0,
            network_policy.render(
                workload_name(deployment),
                selector_labels(deployment, ROLE),
                METRICS_PORT,
                settings.network_policy,
                brokers=True,
            ),
        )
    return children


def workload_name(deployment: ModelDeployment) -> str:
    return f"{deployment.name}-stream"


def _scaled_object(deployment: ModelDeployment) -> Object:
    streaming = cast(Streaming, deployment.spec.streaming)
    scaling = cast(LagAutoscaling, streaming.autoscaling)  # made only with autoscaling
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": workload_name(deployment)},
        "spec": {
            "scaleTargetRef": {"name": workload_name(deployment)},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": [_lag_trigger(streaming.source, consumer_group(deployment), scaling)],
        },
    }


def _lag_trigger(source: str, group: str, scaling: LagAutoscaling) -> Object:
    """KEDA's scaler for the source's transport, watching this group's lag."""
    address = StreamAddress.split(source)  # the runtime refuses a bad one, with its reason
    name, options = address.name, address.options
    group = options.get("group", group)
    threshold = str(scaling.lag_threshold)
    if address.scheme == "kafka":
        return {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": address.netloc,
                "consumerGroup": group,
                "topic": name,
                "lagThreshold": threshold,
            },
        }
    if address.scheme == "redis":
        return {
            "type": "redis-streams",
            "metadata": {"address": address.netloc, "stream": name, "consumerGroup": group, "lagCount": threshold},
        }
    durable = options.get("durable", group).replace(".", "-")
    return {
        "type": "nats-jetstream",
        "metadata": {
            "natsServerMonitoringEndpoint": f"{address.host}:{scaling.nats_monitoring_port}",
            "account": "$G",
            "stream": options.get("stream", ""),
            "consumer": durable,
            "lagThreshold": threshold,
        },
    }
