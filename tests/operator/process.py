"""The operator under test, run as `modelplane operator` in a local process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.testbed.process import Component

SERVING_IMAGE = "example.invalid/modelplane/serving:test"


class Operator:
    def __init__(self, kubeconfig: Path, registry_uri: str, log_dir: Path,
                 scope: tuple[str, ...] = ("--all-namespaces",), name: str = "modelplane-operator"):
        self.env = {
            "KUBECONFIG": str(kubeconfig),
            "MLFLOW_TRACKING_URI": registry_uri,
            "MODELPLANE_SERVING_IMAGE": SERVING_IMAGE,
        }
        self.argv = [str(Path(sys.executable).parent / "modelplane"), "operator", *scope]
        self.log_dir = log_dir
        self.name = name
        self.component: Component | None = None

    def start(self) -> Operator:
        self.component = Component(self.name, self.argv, self.log_dir, env=self.env).start()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod would: no chance to tidy up."""
        self.component.process.kill()
        self.component.process.wait()

    def stop(self) -> None:
        self.component.stop()
