"""The Quickstart's first command: a local registry, a model, a server, a prediction."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_serves_a_prediction_from_a_local_registry(tmp_path: Path):
    modelplane = Path(sys.executable).parent / "modelplane"

    result = subprocess.run(
        [str(modelplane), "demo", "--home", str(tmp_path / "home")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "registered iris version 1 as @champion" in result.stdout
    answers = re.findall(r"^POST /invocations .* -> species (\d) \(labelled (\d)\)$", result.stdout, re.MULTILINE)
    assert len(answers) == 3
    assert all(predicted == labelled for predicted, labelled in answers)
    assert "GET / -> 200: the prediction page" in result.stdout
    assert (tmp_path / "home" / "mlflow.db").exists()
