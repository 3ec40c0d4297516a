"""The serving image's install step, run into a fresh virtual environment (no container
engine runs here): what it installs must serve a registry model."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Registry, show_logs_on_failure
from tests.serving.server import start_server

pytestmark = pytest.mark.registry
DOCKERFILE = REPO / "serving" / "Dockerfile"


def test_the_dockerfile_installs_with_the_script_and_runs_modelplane_as_non_root():
    text = DOCKERFILE.read_text()

    assert "RUN /src/serving/install.sh /src /opt/modelplane" in text
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["modelplane"]' in text


def test_the_install_step_makes_a_working_server(request, registry: Registry, server_env: dict[str, str],
                                                 iris_features, reference, tmp_path: Path, testbed_dir: Path):
    venv = tmp_path / "image"
    installed = subprocess.run(["bash", str(REPO / "serving" / "install.sh"), str(REPO), str(venv)],
                               capture_output=True, text=True, timeout=1200)
    assert installed.returncode == 0, installed.stderr[-3000:]
    flavours = subprocess.run([str(venv / "bin" / "python"), "-c", "import lightgbm, pandas, pyarrow.dataset, pyarrow.parquet, sklearn, xgboost"],
                              capture_output=True, text=True)
    assert flavours.returncode == 0, flavours.stderr

    process, url = start_server("serve-image", server_env, testbed_dir / "logs",
                                executable=str(venv / "bin" / "modelplane"))
    show_logs_on_failure(request.config, [process])
    try:
        rows = iris_features.iloc[:5]
        response = requests.post(url + "/invocations", json={"dataframe_records": rows.to_dict("records")}, timeout=10)
    finally:
        process.stop()
    assert response.json() == {"predictions": reference[:5]}
