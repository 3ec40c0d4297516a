"""The OpenAPI document of a served model: a valid OpenAPI 3.1 document whose examples,
sent as written, are answered 200 in the documented shape, and whose schemas hold the
requests the server takes and not the ones it refuses."""

from __future__ import annotations

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.conftest import Registry

pytestmark = pytest.mark.registry


def _document(url: str) -> dict:
    document = requests.get(url + "/openapi.json", timeout=10).json()
    validate(document)
    return document


def _operation(document: dict, path: str) -> tuple[dict, dict]:
    """(request body schema with its example, 200 response schema) of a POST route."""
    post = document["paths"][path]["post"]
    return post["requestBody"]["content"]["application/json"], post["responses"]["200"]["content"]["application/json"][
        "schema"
    ]


def _send(url: str, document: dict, path: str, body: dict) -> dict:
    post = document["paths"][path]["post"]
    for parameter in post.get("parameters", ()):
        path = path.replace("{" + parameter["name"] + "}", parameter["example"])
    response = requests.post(url + path, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_examples_get_the_documented_answers(server: str, registry: Registry, reference):
    document = _document(server)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == registry.models.champion_version

    for path in ("/invocations", "/v2/models/{name}/infer"):
        media, answer_schema = _operation(document, path)
        Draft202012Validator(media["schema"]).validate(media["example"])
        answer = _send(server, document, path, media["example"])
        Draft202012Validator(answer_schema).validate(answer)
        predictions = answer["predictions"] if path == "/invocations" else answer["outputs"][0]["data"]
        assert predictions == reference[:3]


def test_the_request_schema_refuses_what_the_server_refuses(server: str, iris_features):
    document = _document(server)
    media, _ = _operation(document, "/invocations")
    schema = Draft202012Validator(media["schema"])
    row = iris_features.iloc[0].to_dict()

    for body in (
        {"dataframe_records": [{**row, "sepal length (cm)": "long"}]},
        {"dataframe_records": [{**row, "petal colour": 1.0}]},
        {"dataframe_records": [row], "dataframe_split": {"columns": [], "data": []}},
        {"dataframe_records": []},
    ):
        assert not schema.is_valid(body), body
        assert requests.post(server + "/invocations", json=body, timeout=10).status_code == 400, body
    assert schema.is_valid({"dataframe_records": [row]})


def test_a_tensor_model_s_schema_holds_its_requests(serve_model, registry: Registry):
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    url = serve_model(f"models:/{registry.models.digits}/1")
    document = _document(url)
    media, answer_schema = _operation(document, "/invocations")
    images, _ = load_digits(return_X_y=True)
    body = {"inputs": images[:5].tolist()}
    schema = Draft202012Validator(media["schema"])

    assert schema.is_valid(body)
    assert not schema.is_valid({"inputs": images[:5, :63].tolist()})
    answer = _send(url, document, "/invocations", body)
    Draft202012Validator(answer_schema).validate(answer)
    expected = mlflow.pyfunc.load_model(f"models:/{registry.models.digits}/1").predict(images[:5]).tolist()
    assert answer["predictions"] == expected
