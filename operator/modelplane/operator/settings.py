"""The operator's own settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from importlib.metadata import version

from modelplane.operator.objects import Object
from modelplane.operator.registry import Registries
from modelplane.operator.render import NetworkPolicySettings, RenderSettings
from modelplane.operator.render.common import DEFAULT_RESOURCES

DEFAULT_SERVING_IMAGE = f"modelplane/serving:{version('modelplane')}"
# Variables set from the chart's values (named beside each), as JSON.
WORKLOAD_RESOURCES = "MODELPLANE_WORKLOAD_RESOURCES"  # workloads.resources
NETWORK_POLICY = "MODELPLANE_NETWORK_POLICY"  # networkPolicy, when networkPolicy.enabled
# The chart's camelCase keys of `networkPolicy`, and the settings they become.
_NETWORK_POLICY_KEYS = {
    "ingressFrom": "ingress_from",
    "registryEgress": "registry_egress",
    "brokerEgress": "broker_egress",
    "dns": "dns",
}


class SettingsError(ValueError):
    """A setting in the operator's environment cannot be used; the message names the
    variable and the chart value it comes from."""


@dataclass(frozen=True)
class OperatorSettings:
    render: RenderSettings
    """Defaults for what a ModelDeployment leaves unset."""

    registries: Registries = field(default_factory=Registries)
    """The default registry, and the registries ModelDeployments may name."""

    webhook_secret: str | None = None
    """The secret MLflow's registry webhooks sign with; without it there is no webhook endpoint."""

    webhook_address: tuple[str, int] = ("0.0.0.0", 8090)
    """Where the webhook endpoint listens (MODELPLANE_WEBHOOK_LISTEN=host:port)."""

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        host, _, port = os.environ.get("MODELPLANE_WEBHOOK_LISTEN", "0.0.0.0:8090").rpartition(":")
        default_registry = os.environ.get("MLFLOW_TRACKING_URI") or None
        allowed = os.environ.get("MODELPLANE_ALLOWED_REGISTRIES", "")
        return cls(
            render=RenderSettings(
                serving_image=os.environ.get("MODELPLANE_SERVING_IMAGE", DEFAULT_SERVING_IMAGE),
                registry_uri=default_registry,
                resources=_workload_resources(),
                network_policy=_network_policy(),
            ),
            registries=Registries(default_registry, tuple(host for host in allowed.split(",") if host.strip())),
            webhook_secret=os.environ.get("MODELPLANE_WEBHOOK_SECRET") or None,
            webhook_address=(host, int(port)),
        )


def _json_variable(name: str) -> object:
    try:
        return json.loads(os.environ[name])
    except ValueError as error:
        raise SettingsError(f"{name} is not JSON ({error})") from None


def _workload_resources() -> Object:
    """The default resources of serving containers: the environment's, else the built-in ones."""
    if WORKLOAD_RESOURCES not in os.environ:
        return copy.deepcopy(DEFAULT_RESOURCES)
    resources = _json_variable(WORKLOAD_RESOURCES)
    if (
        not isinstance(resources, dict)
        or not resources.keys() <= {"requests", "limits"}
        or not all(isinstance(value, dict) for value in resources.values())
    ):
        raise SettingsError(
            f"{WORKLOAD_RESOURCES} must be an object of requests and limits, as a container's "
            "resources (chart value workloads.resources), e.g. "
            '{"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}}; {} for none'
        )
    return resources


def _network_policy() -> NetworkPolicySettings | None:
    """The NetworkPolicy settings of workloads; None unless the environment enables them."""
    if NETWORK_POLICY not in os.environ:
        return None
    given = _json_variable(NETWORK_POLICY)
    if not isinstance(given, dict):
        raise SettingsError(f"{NETWORK_POLICY} must be an object with the keys {', '.join(_NETWORK_POLICY_KEYS)}")
    values = {}
    for key, value in given.items():
        if key not in _NETWORK_POLICY_KEYS:
            raise SettingsError(
                f"{NETWORK_POLICY} has an unknown key {key!r} (chart value networkPolicy.{key}): "
                f"the keys are {', '.join(_NETWORK_POLICY_KEYS)}"
            )
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise SettingsError(
                f"{NETWORK_POLICY}: {key} (chart value networkPolicy.{key}) must be a list of "
                "objects, as in a NetworkPolicy"
            )
        values[_NETWORK_POLICY_KEYS[key]] = tuple(value)
    try:
        return NetworkPolicySettings(**values)
    except ValueError as error:
        raise SettingsError(f"{NETWORK_POLICY}: {error} (chart value networkPolicy.ingressFrom)") from None
