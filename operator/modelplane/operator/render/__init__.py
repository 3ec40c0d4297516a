"""Rendering: a pure function from a ModelDeployment and its resolved model version to
the manifests of its children. No Kubernetes calls, so `modelplane render` shows exactly
what the operator would apply."""

from __future__ import annotations

from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.render import batch, online, streaming
from modelplane.operator.render.common import (
    NetworkPolicySettings,
    RenderSettings,
    child_labels,
    owner_reference,
)
from modelplane.operator.spec import Mode, ResolvedModel

__all__ = ["NetworkPolicySettings", "RenderSettings", "render"]

_RENDERERS = {Mode.batch: batch.render, Mode.streaming: streaming.render}


def render(
    deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings, canary: ResolvedModel | None = None
) -> list[Object]:
    """The children of `deployment` for its current mode, labelled, and owned by it when
    its uid is known (always, in the operator), so the garbage collector removes them.
    `canary`, a version run beside `model` on a share of the replicas, is for online only."""
    if deployment.spec.mode is Mode.online:
        children = online.render(deployment, model, settings, canary)
    else:
        children = _RENDERERS[deployment.spec.mode](deployment, model, settings)
    for child in children:
        metadata = child["metadata"]
        metadata["labels"] = {**child_labels(deployment), **metadata.get("labels", {})}
        if deployment.namespace:
            metadata["namespace"] = deployment.namespace
        if deployment.uid:
            metadata["ownerReferences"] = [owner_reference(deployment)]
    return children
