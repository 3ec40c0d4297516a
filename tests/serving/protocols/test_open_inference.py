"""The Open Inference Protocol (V2) of `modelplane serve`, for tables, tensors and images."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import Registry
from tests.serving.server import batching
from tests.testbed.registry import digit_scan

pytestmark = pytest.mark.registry


def _columns(frame) -> dict:
    return {
        "inputs": [
            {"name": name, "shape": [len(frame)], "datatype": "FP64", "data": frame[name].tolist()}
            for name in frame.columns
        ]
    }


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def test_health_and_metadata(server: str, registry: Registry):
    iris = registry.models.iris
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{iris}/ready",
        f"/v2/models/{iris}/versions/{registry.models.champion_version}/ready",
    ):
        assert requests.get(server + path, timeout=5).status_code == 200, path
    assert requests.get(server + "/v2", timeout=5).json()["name"] == "modelplane"

    metadata = requests.get(f"{server}/v2/models/{iris}", timeout=5).json()
    assert metadata["versions"] == [registry.models.champion_version]
    assert {"name": "sepal length (cm)", "datatype": "FP64", "shape": [-1]} in metadata["inputs"]
    assert {dependency["satisfied"] for dependency in metadata["parameters"]["dependencies"]} == {True}


def test_a_table_model_takes_one_tensor_per_column(server: str, registry: Registry, iris_features, reference):
    rows = iris_features.iloc[40:60]
    for path in (
        f"/v2/models/{registry.models.iris}/infer",
        f"/v2/models/{registry.models.iris}/versions/{registry.models.champion_version}/infer",
    ):
        response = requests.post(server + path, json={"id": "r-1", **_columns(rows)}, timeout=10)

        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["id"], answer["model_name"]) == ("r-1", registry.models.iris)
        (output,) = answer["outputs"]
        assert (output["shape"], output["data"]) == ([20], reference[40:60])


def test_v2_and_mlflow_requests_share_batches_and_each_gets_its_own_answer(server, registry, iris_features, reference):
    def one(index: int):
        row = iris_features.iloc[index : index + 1]
        if index % 2:
            response = requests.post(f"{server}/v2/models/{registry.models.iris}/infer", json=_columns(row), timeout=30)
            return response.json()["outputs"][0]["data"][0]
        response = requests.post(
            server + "/invocations", json={"dataframe_records": row.to_dict("records")}, timeout=30
        )
        return response.json()["predictions"][0]

    before = batching(server)
    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(one, range(len(iris_features)))) == reference
    scored, batches, alone = (after - start for after, start in zip(batching(server), before, strict=True))

    assert scored == len(iris_features)
    assert scored - alone > scored / 2, f"{scored - alone} of {scored} requests shared a predict call ({batches:.0f})"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda body: body["inputs"][0].update(shape=[3]), 400, "shape [3] holds 3 elements, but data has 2"),
        (lambda body: body["inputs"][0].update(data=["wide", 1.0]), 400, "expects a number"),
        (lambda body: body["inputs"][0].update(datatype="FLOAT"), 400, "datatype 'FLOAT'"),
        (lambda body: body["inputs"][0].pop("shape"), 400, "lacks shape"),
        (lambda body: body["inputs"][0].update(name="colour"), 400, "column 'colour' is not an input"),
        (lambda body: body["inputs"].pop(), 400, "petal width (cm)"),
        (lambda body: body["inputs"][0].update(name=5), 400, "inputs[0].name must be a non-empty string"),
        (lambda body: body["inputs"][0].update(name=["sepal length (cm)"]), 400, "inputs[0].name must be"),
        (lambda body: body["inputs"].append(dict(body["inputs"][0])), 400, "input 'sepal length (cm)' is given twice"),
        (lambda body: body["inputs"][0].update(shape=[2, 1], data=[[5.1, 4.9], []]), 400, "nested unevenly"),
        (lambda body: [tensor.update(shape=[0], data=[]) for tensor in body["inputs"]], 400, "holds no data"),
        (lambda body: body["inputs"][0].update(data=[10**400, 4.9]), 400, "cannot be read as double"),
        (lambda body: body.update(id={"request": 1}), 400, "id must be a string"),
        (lambda body: body.update(parameters=[1]), 400, "parameters must be a JSON object"),
        (lambda body: body["inputs"][0].update(data=[float("nan"), 4.9]), 422, "the model cannot score this input"),
    ],
)
def test_bad_tensors_get_a_clear_4xx(server, registry: Registry, iris_features, change, status, words):
    body = _columns(iris_features.iloc[:2])
    change(body)

    # NaN written as Python's json writes it, which requests' own encoder refuses to.
    response = requests.post(
        f"{server}/v2/models/{registry.models.iris}/infer",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_v2_parameters_describe_the_request_and_do_not_fail_it(server, registry: Registry, iris_features, reference):
    body = {"parameters": {"content_type": "pd", "headers": {"x": "y"}}, **_columns(iris_features.iloc[:3])}

    response = requests.post(f"{server}/v2/models/{registry.models.iris}/infer", json=body, timeout=10)

    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == reference[:3]


def test_another_model_name_or_version_is_404(server: str, registry: Registry):
    assert requests.get(f"{server}/v2/models/not-iris", timeout=5).status_code == 404
    response = requests.post(f"{server}/v2/models/{registry.models.iris}/versions/99/infer", json={}, timeout=5)
    assert response.status_code == 404 and "version 99" in response.json()["error"]


def test_a_tensor_model_takes_shaped_tensors_and_checks_the_shape(serve_model, registry: Registry, digits):
    import mlflow.pyfunc

    url = serve_model(f"models:/{registry.models.digits}/1")
    images, _ = digits
    expected = mlflow.pyfunc.load_model(f"models:/{registry.models.digits}/1").predict(images[:8]).tolist()
    infer = f"{url}/v2/models/{registry.models.digits}/infer"

    tensor = {"name": "images", "shape": [8, 64], "datatype": "FP64", "data": images[:8].tolist()}
    assert requests.post(infer, json={"inputs": [tensor]}, timeout=10).json()["outputs"][0]["data"] == expected
    mlflow_style = requests.post(url + "/invocations", json={"inputs": images[:8].tolist()}, timeout=10)
    assert mlflow_style.json()["predictions"] == expected

    narrow = {**tensor, "shape": [8, 63], "data": images[:8, :63].tolist()}
    response = requests.post(infer, json={"inputs": [narrow]}, timeout=10)
    assert response.status_code == 400 and "shape" in response.json()["error"]


def test_an_image_model_takes_bytes_as_base64(serve_model, registry: Registry, digits):
    import mlflow.pyfunc
    import pandas as pd

    url = serve_model(f"models:/{registry.models.digit_scans}/1", "--allow-pickle")
    images, labels = digits
    scans = [digit_scan(image) for image in images[:10]]
    expected = (
        mlflow.pyfunc.load_model(f"models:/{registry.models.digit_scans}/1")
        .predict(pd.DataFrame({"image": scans}))
        .tolist()
    )
    encoded = [base64.b64encode(scan).decode() for scan in scans]

    v2 = requests.post(
        f"{url}/v2/models/{registry.models.digit_scans}/infer",
        json={"inputs": [{"name": "image", "shape": [10], "datatype": "BYTES", "data": encoded}]},
        timeout=10,
    )
    mlflow_style = requests.post(
        url + "/invocations",
        json={"dataframe_split": {"columns": ["image"], "data": [[scan] for scan in encoded]}},
        timeout=10,
    )

    assert v2.json()["outputs"][0]["data"] == expected
    assert mlflow_style.json()["predictions"] == expected
    assert sum(a == b for a, b in zip(expected, labels[:10], strict=False)) >= 8, "the scans were not read as digits"
    broken = requests.post(url + "/invocations", json={"dataframe_records": [{"image": "not base64!"}]}, timeout=10)
    assert broken.status_code == 400 and "base64" in broken.json()["message"]


def test_metadata_reports_requirements_that_are_not_installed(serve_model, registry: Registry):
    url = serve_model(f"models:/{registry.models.digit_scans}/1", "--allow-pickle")

    dependencies = requests.get(f"{url}/v2/models/{registry.models.digit_scans}", timeout=5).json()["parameters"][
        "dependencies"
    ]

    assert {"requirement": registry.models.missing_requirement, "installed": None, "satisfied": False} in dependencies
    assert all(
        dependency["satisfied"]
        for dependency in dependencies
        if dependency["requirement"] != registry.models.missing_requirement
    )
