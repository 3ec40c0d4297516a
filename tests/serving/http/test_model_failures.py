"""A model that raises while predicting: a value it refuses is the client's to fix (422), any
other failure is the model's (500); both answer with the model's own message, never a
traceback, on both protocols, and the server goes on serving."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import Registry

pytestmark = pytest.mark.registry

BROKEN_LOOKUP = "the lookup table has no entry for 13"


def _fails_on_thirteen():
    import mlflow.pyfunc

    # Defined inside a function so cloudpickle stores the class by value: the server
    # process loads it without importing this test module.
    class FailsOnThirteen(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            if (model_input["x"] == 13).any():
                raise RuntimeError(BROKEN_LOOKUP)
            return model_input["x"] * 2

    return FailsOnThirteen()


@pytest.fixture(scope="module")
def failing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder whose predict raises a RuntimeError on x == 13."""
    import cloudpickle
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    folder = tmp_path_factory.mktemp("failing-model") / "fails-on-thirteen"
    example = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(
        folder,
        python_model=_fails_on_thirteen(),
        signature=infer_signature(example, example["x"] * 2),
        pip_requirements=[f"cloudpickle=={cloudpickle.__version__}", f"pandas=={pd.__version__}"],
    )
    return folder


def _invocations(url: str, x: float) -> requests.Response:
    return requests.post(url + "/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[x]]}}, timeout=30)


def _infer(url: str, name: str, x: float) -> requests.Response:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}
    return requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=30)


def test_a_model_failure_is_a_500_with_the_model_message(serve_model, failing_model: Path):
    url = serve_model(str(failing_model), "--allow-pickle")

    mlflow_answer = _invocations(url, 13.0)
    v2_answer = _infer(url, failing_model.name, 13.0)

    assert mlflow_answer.status_code == 500, mlflow_answer.text
    assert mlflow_answer.json() == {
        "error_code": "INTERNAL_ERROR",
        "message": f"the model failed to predict: {BROKEN_LOOKUP}",
    }
    assert v2_answer.status_code == 500, v2_answer.text
    assert v2_answer.json() == {"error": f"the model failed to predict: {BROKEN_LOOKUP}"}
    assert "Traceback" not in mlflow_answer.text + v2_answer.text
    after = _invocations(url, 4.0)
    assert after.status_code == 200 and after.json()["predictions"] == [{"x": 8.0}]


def test_a_value_the_model_refuses_is_a_422_with_the_model_message(serve_model, registry: Registry):
    url = serve_model(f"models:/{registry.models.picky}/1", "--allow-pickle")

    mlflow_answer = _invocations(url, -1.0)
    v2_answer = _infer(url, registry.models.picky, -1.0)

    assert mlflow_answer.status_code == 422, mlflow_answer.text
    assert mlflow_answer.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "the model cannot score this input: x must not be negative",
    }
    assert v2_answer.status_code == 422, v2_answer.text
    assert v2_answer.json() == {"error": "the model cannot score this input: x must not be negative"}
    after = _invocations(url, 4.0)
    assert after.status_code == 200 and after.json()["predictions"] == [{"x": 8.0}]
