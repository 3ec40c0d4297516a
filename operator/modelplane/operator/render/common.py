"""What every child shares: names, labels, ownership, and the inputs of rendering."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field

from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.spec import API_VERSION, KIND

# The kinds whose status is a ModelDeployment's readiness.
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")
# Kinds that guard a workload's pods, applied with the workloads and before them.
GUARD_KINDS = ("NetworkPolicy",)
# Every kind a ModelDeployment may own, in any mode; pruning looks at all of them (a
# NetworkPolicy too where the settings make none now: they may have made one before).
# The operator's RBAC in the chart grants each of them.
CHILD_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)
# Kinds of add-ons a cluster may not have; looked at only where the operator found them.
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")

MANAGED_BY = "modelplane"
DEPLOYMENT_LABEL = "modelplane.io/deployment"
MODE_LABEL = "modelplane.io/mode"
MODEL_VERSION_LABEL = "modelplane.io/model-version"
TEMPLATE_HASH_ANNOTATION = "modelplane.io/template-hash"


# What a serving container gets when its ModelDeployment sets no `spec.resources`: a
# shared cluster schedules and evicts by requests, and a container without limits can
# take a node's memory. The requests fit a small model at rest (iris holds 166-179 MiB)
# with room for requests in flight; the limits let a model of a few hundred MB load.
# One CPU is what one server worker uses (`--workers auto` counts the limit).
DEFAULT_RESOURCES: Object = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
# Cluster DNS as most clusters run it (kube-dns, or CoreDNS under that label).
KUBE_DNS: tuple[Object, ...] = (
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    },
)
# The workload's own namespace: a pod selector without a namespace selector.
OWN_NAMESPACE: tuple[Object, ...] = ({"podSelector": {}},)


@dataclass(frozen=True)
class NetworkPolicySettings:
    """Whom an online or streaming workload's pods may talk to, as NetworkPolicy peers
    and egress rules. A NetworkPolicy cannot name a Service, only pods (by namespace and
    labels) or address blocks, so the registry and the brokers are described that way."""

    ingress_from: tuple[Object, ...] = OWN_NAMESPACE
    """Peers that may reach the serving port (online) or the metrics port (streaming)."""

    registry_egress: tuple[Object, ...] = ()
    """Egress rules (`to` and `ports`) to the registry and its artifact store, where
    every pod downloads its model from."""

    broker_egress: tuple[Object, ...] = ()
    """Egress rules to the brokers streaming consumers read from and write to."""

    dns: tuple[Object, ...] = KUBE_DNS
    """Peers serving DNS, reached on port 53 over UDP and TCP."""

    def __post_init__(self) -> None:
        # An ingress rule with no peers is NetworkPolicy's way of saying "from anywhere".
        if not self.ingress_from:
            raise ValueError(
                "ingressFrom is empty, which a NetworkPolicy reads as every source: name the peers "
                "that may connect, e.g. [{podSelector: {}}] for the workload's own namespace"
            )


@dataclass(frozen=True)
class RenderSettings:
    """The operator's defaults for what a ModelDeployment leaves unset."""

    serving_image: str
    registry_uri: str | None = None
    scaled_objects: bool = False
    """KEDA is installed: streaming consumers may scale on lag with a ScaledObject."""
    resources: Object = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES))
    """The serving container's resources when `spec.resources` is unset; empty: none."""
    network_policy: NetworkPolicySettings | None = None
    """With it, each online and streaming workload gets a NetworkPolicy. Off by default:
    a policy denies whatever it does not list, so it needs the cluster's registry and
    brokers described first."""


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


def owner_reference(deployment: ModelDeployment) -> Object:
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
