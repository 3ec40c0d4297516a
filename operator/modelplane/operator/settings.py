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

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        return cls(render=RenderSettings(
            serving_image=os.environ.get("MODELPLANE_SERVING_IMAGE", DEFAULT_SERVING_IMAGE),
            registry_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
        ))
