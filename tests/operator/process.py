"""The operator under test, run as `modelplane operator` in a local process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.testbed.process import Component, free_port

SERVING_IMAGE = "example.invalid/modelplane/serving:test"
WEBHOOK_SECRET = "testbed-webhook-secret"


class Operator:
    def __init__(
        self,
        kubeconfig: Path,
        registry_uri: str,
        log_dir: Path,
        scope: tuple[str, ...] = ("--all-namespaces",),
        name: str = "modelplane-operator",
        serving_image: str = SERVING_IMAGE,
        settings: dict[str, str] | None = None,
    ):
        """`settings`: more of the operator's variables, as the chart's values set them."""
        self.env = {
            "KUBECONFIG": str(kubeconfig),
            "MLFLOW_TRACKING_URI": registry_uri,
            "MODELPLANE_SERVING_IMAGE": serving_image,
            "MODELPLANE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MODELPLANE_WEBHOOK_LISTEN": f"127.0.0.1:{free_port()}",
            **(settings or {}),
        }
        self.argv = [str(Path(sys.executable).parent / "modelplane"), "operator", *scope]
        self.log_dir = log_dir
        self.name = name
        self.component: Component | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://{self.env['MODELPLANE_WEBHOOK_LISTEN']}/mlflow/webhook"

    def start(self) -> Operator:
        self.component = Component(self.name, self.argv, self.log_dir, env=self.env).start()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod would: no chance to tidy up."""
        self.component.process.kill()
        self.component.process.wait()

    def stop(self) -> None:
        self.component.stop()
