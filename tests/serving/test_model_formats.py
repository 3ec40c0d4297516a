"""Loading without --allow-pickle: crafted models whose metadata points MLflow's loaders at
their own code are refused before any of it runs, and models in the formats Modelplane
reads itself still serve."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import Registry, show_logs_on_failure
from tests.serving import crafted_models
from tests.serving.server import run_to_exit, start_server

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ran")


def _code(marker_dir: Path, name: str) -> str:
    """Code a crafted model runs when loaded: it leaves a file behind."""
    return f"open({str(marker_dir / name)!r}, 'w').write('ran')"


@pytest.fixture(scope="module")
def crafted(registry: Registry, marker_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The crafted models, registered: name to models:/ URI."""
    build = {
        "skops-trusting-exec": lambda code, folder: crafted_models.skops_running(code, folder),
        "lightgbm-unpickling": lambda code, folder: crafted_models.lightgbm_unpickling(code, folder),
        "xgboost-class-from-code": lambda code, folder: crafted_models.xgboost_importing(code, folder, shadow=False),
        "xgboost-shadowed-by-code": lambda code, folder: crafted_models.xgboost_importing(code, folder, shadow=True),
    }
    return {
        name: crafted_models.register(
            make(_code(marker_dir, name), tmp_path_factory.mktemp(name) / "model"),
            f"crafted-{name}",
            registry.tracking_uri,
        )
        for name, make in build.items()
    }


@pytest.mark.parametrize(
    "attack", ["skops-trusting-exec", "lightgbm-unpickling", "xgboost-class-from-code", "xgboost-shadowed-by-code"]
)
def test_a_crafted_model_is_refused_before_its_code_runs(
    crafted, attack: str, marker_dir: Path, server_env: dict[str, str]
):
    uri = crafted[attack]

    result = run_to_exit({**server_env, "MODELPLANE_MODEL": uri}, "serve")

    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert uri in line and "--allow-pickle" in line
    assert "Traceback" not in result.stderr
    assert not (marker_dir / attack).exists(), "the model's code ran"


def test_the_crafted_models_do_run_their_code_through_mlflow(crafted, marker_dir: Path, registry: Registry):
    """The attacks are real: MLflow's own loader runs the skops one's code (in a process of
    its own, as it imports what the model names)."""
    import subprocess

    uri = crafted["skops-trusting-exec"]
    loading = f"import mlflow; mlflow.set_tracking_uri({registry.tracking_uri!r}); mlflow.pyfunc.load_model({uri!r})"
    subprocess.run([sys.executable, "-c", loading], capture_output=True, timeout=120)

    assert (marker_dir / "skops-trusting-exec").exists()
    (marker_dir / "skops-trusting-exec").unlink()


def test_a_model_linking_outside_its_folder_is_refused(server_env: dict[str, str], tmp_path: Path):
    secret = tmp_path / "host-secret"
    secret.write_text("token=hunter2\n")
    folder = crafted_models.linking_out(secret, tmp_path / "model")

    result = run_to_exit({**server_env, "MODELPLANE_MODEL": str(folder)}, "serve")

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "requirements.txt links outside the model folder" in line and "--allow-pickle" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_a_tree_pointing_outside_itself_is_refused(server_env: dict[str, str], tmp_path: Path):
    folder = crafted_models.tree_pointing_outside(tmp_path / "model")

    result = run_to_exit({**server_env, "MODELPLANE_MODEL": str(folder)}, "serve")

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "tree_ has a split pointing outside the tree" in line and "--allow-pickle" in line


def test_a_forest_in_skops_format_serves_without_allow_pickle(serve_model, registry: Registry, iris_features):
    """The challenger is a random forest: its trees are a type skops does not trust by
    default, and Modelplane does."""
    import mlflow.pyfunc

    uri = f"models:/{registry.models.iris}/{registry.models.challenger_version}"
    rows = iris_features.iloc[40:60]
    response = requests.post(
        serve_model(uri) + "/invocations", json={"dataframe_records": rows.to_dict(orient="records")}, timeout=10
    )

    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == list(mlflow.pyfunc.load_model(uri).predict(rows))


@pytest.mark.parametrize("library", ["xgboost", "xgboost-with-params", "lightgbm"])
def test_a_native_booster_serves_without_allow_pickle(
    request, library: str, registry: Registry, server_env: dict[str, str], testbed_dir: Path
):
    """With a signature, so the server checks the columns itself and scores them with the
    booster's own predict; one signature declares params, whose defaults MLflow hands the
    model (a margin instead of a class here), and the server must too."""
    import mlflow
    from mlflow.models import infer_signature

    from modelplane.demo import iris_features as iris

    features, labels = iris()
    mlflow.set_tracking_uri(registry.tracking_uri)
    with mlflow.start_run():
        if library.startswith("xgboost"):
            import xgboost

            model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels)
            params = {"output_margin": True} if library == "xgboost-with-params" else None
            signature = infer_signature(features, model.predict(features), params=params)
            logged = mlflow.xgboost.log_model(
                model, name="model", signature=signature, registered_model_name=f"native-{library}"
            )
        else:
            import lightgbm

            model = lightgbm.train(
                {"objective": "multiclass", "num_class": 3, "verbose": -1},
                lightgbm.Dataset(features, labels),
                num_boost_round=5,
            )
            logged = mlflow.lightgbm.log_model(
                model,
                name="model",
                signature=infer_signature(features, model.predict(features)),
                registered_model_name=f"native-{library}",
            )
    uri = f"models:/native-{library}/{logged.registered_model_version}"
    rows = features.iloc[40:60]

    process, url = start_server(
        f"serve-native-{library}", {**server_env, "MODELPLANE_MODEL": uri}, testbed_dir / "logs"
    )
    show_logs_on_failure(request.config, [process])
    try:
        response = requests.post(
            url + "/invocations", json={"dataframe_records": rows.to_dict(orient="records")}, timeout=10
        )
    finally:
        process.stop()

    assert response.status_code == 200, response.text
    expected = mlflow.pyfunc.load_model(uri).predict(rows)
    assert np.asarray(response.json()["predictions"]).shape == expected.shape
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-6)
