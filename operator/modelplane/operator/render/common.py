"""What every child shares: names, labels, ownership, and the inputs of rendering."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.spec import API_VERSION, KIND

MANAGED_BY = "modelplane"
DEPLOYMENT_LABEL = "modelplane.io/deployment"
MODE_LABEL = "modelplane.io/mode"
MODEL_VERSION_LABEL = "modelplane.io/model-version"
TEMPLATE_HASH_ANNOTATION = "modelplane.io/template-hash"


@dataclass(frozen=True)
class ResolvedModel:
    """A registry model pinned to one version, as the registry described it."""

    name: str
    version: str
    run_id: str | None = None
    source: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class RenderSettings:
    """The operator's defaults for what a ModelDeployment leaves unset."""

    serving_image: str
    registry_uri: str | None = None
    scaled_objects: bool = False
    """KEDA is installed: streaming consumers may scale on lag with a ScaledObject."""


def child_labels(deployment: ModelDeployment) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelplane-serving",
        "app.kubernetes.io/instance": deployment.name,
        "app.kubernetes.io/component": deployment.spec.mode.value,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        DEPLOYMENT_LABEL: deployment.name,
        MODE_LABEL: deployment.spec.mode.value,
    }


def selector_labels(deployment: ModelDeployment, role: str) -> dict[str, str]:
    """Labels that select one workload's pods; they never change for its lifetime,
    because a Deployment's selector is immutable."""
    return {DEPLOYMENT_LABEL: deployment.name, "modelplane.io/role": role}


def owner_reference(deployment: ModelDeployment) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": deployment.name,
        "uid": deployment.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def content_hash(value: object) -> str:
    """A short stable hash of a JSON-able value: equal inputs, equal hash, across runs."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]
