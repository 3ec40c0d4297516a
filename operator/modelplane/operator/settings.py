"""The operator's own settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version

from modelplane.operator.registry import Registries
from modelplane.operator.render import RenderSettings

DEFAULT_SERVING_IMAGE = f"modelplane/serving:{version('modelplane')}"


@dataclass(frozen=True)
class OperatorSettings:
    render: RenderSettings
    """Defaults for what a ModelDeployment leaves unset."""

    registries: Registries = Registries()
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
            ),
            registries=Registries(default_registry, tuple(host for host in allowed.split(",") if host.strip())),
            webhook_secret=os.environ.get("MODELPLANE_WEBHOOK_SECRET") or None,
            webhook_address=(host, int(port)),
        )
