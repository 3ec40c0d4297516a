"""Every value is checked against its column's type: what `mlflow models serve` lets pass
(1.5 as an integer, null or 1 as a boolean) is refused with the column and row named."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import Registry

pytestmark = pytest.mark.registry

APPLICANT = {"age": 41, "income": 52_000.0, "employed": True}


@pytest.fixture(scope="module")
def credit(serve_model, registry: Registry) -> str:
    return serve_model(f"models:/{registry.models.credit}/1")


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": [APPLICANT, {**APPLICANT, "age": 30.0}]},  # an integral float is an integer
        {"dataframe_split": {"columns": list(APPLICANT), "data": [list(APPLICANT.values())]}},
        {"inputs": {name: [value] for name, value in APPLICANT.items()}},
        {"instances": [APPLICANT]},
    ],
)
def test_well_typed_rows_are_scored(credit: str, body: dict):
    response = requests.post(credit + "/invocations", json=body, timeout=10)

    assert response.status_code == 200, response.text
    assert all(isinstance(prediction, bool) for prediction in response.json()["predictions"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"age": 41.5}, "column 'age' expects an integer (long); row 1 is 41.5"),
        ({"age": None}, "column 'age' is required (long), but row 1 is missing or null"),
        ({"age": "41"}, "column 'age' expects an integer"),
        ({"age": True}, "column 'age' expects an integer"),
        ({"employed": None}, "column 'employed' is required (boolean)"),
        ({"employed": 1}, "column 'employed' expects true or false"),
        ({"employed": "yes"}, "column 'employed' expects true or false"),
        ({"income": "high"}, "column 'income' expects a number"),
        ({"zip": "10115"}, "column 'zip' is not an input of the model"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_column_and_row(credit: str, change: dict, words: str):
    response = requests.post(
        credit + "/invocations", json={"dataframe_records": [APPLICANT, {**APPLICANT, **change}]}, timeout=10
    )

    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


@pytest.mark.parametrize("params", [{}, {"threshold": 0.5}])
def test_params_do_not_skip_the_check(credit: str, params: dict):
    response = requests.post(
        credit + "/invocations", json={"dataframe_records": [{**APPLICANT, "age": 41.5}], "params": params}, timeout=10
    )

    assert response.status_code == 400, response.text
    assert "column 'age' expects an integer (long); row 0 is 41.5" in response.json()["message"]


def test_a_well_typed_request_with_params_is_scored(credit: str):
    response = requests.post(credit + "/invocations", json={"dataframe_records": [APPLICANT], "params": {}}, timeout=10)

    assert response.status_code == 200, response.text
    assert isinstance(response.json()["predictions"][0], bool)


def test_csv_is_checked_the_same_way(credit: str):
    good = requests.post(
        credit + "/invocations",
        data="age,income,employed\n41,52000.0,True\n",
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    bad = requests.post(
        credit + "/invocations",
        data="age,income,employed\n41,52000.0,\n",
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )

    assert good.status_code == 200, good.text
    assert bad.status_code == 400 and "column 'employed' is required" in bad.json()["message"]
