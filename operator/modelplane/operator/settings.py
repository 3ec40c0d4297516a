"""The operator's own settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version

from modelplane.operator.render import RenderSettings

DEFAULT_SERVING_IMAGE = f"modelplane/serving:{version('modelplane')}"


@dataclass(frozen=True)
class OperatorSettings:
    render: RenderSettings
    """Defaults for what a ModelDeployment leaves unset."""

    webhook_secret: str | None = None
    """The secret MLflow's registry webhooks sign with; without it there is no webhook endpoint."""

    webhook_address: tuple[str, int] = ("0.0.0.0", 8090)
    """Where the webhook endpoint listens (MODELPLANE_WEBHOOK_LISTEN=host:port)."""

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        host, _, port = os.environ.get("MODELPLANE_WEBHOOK_LISTEN", "0.0.0.0:8090").rpartition(":")
        return cls(
            render=RenderSettings(
                serving_image=os.environ.get("MODELPLANE_SERVING_IMAGE", DEFAULT_SERVING_IMAGE),
                registry_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
            ),
            webhook_secret=os.environ.get("MODELPLANE_WEBHOOK_SECRET") or None,
            webhook_address=(host, int(port)),
        )
