"""`modelplane serve` against the test bed's registry, over real HTTP on loopback."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import Registry, show_logs_on_failure
from tests.serving.server import batching, run_to_exit, start_server

pytestmark = pytest.mark.registry


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _split(frame) -> dict:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


def test_health_and_version(server: str, registry: Registry):
    for path in ("/ping", "/health", "/healthz", "/readyz"):
        assert requests.get(server + path, timeout=5).status_code == 200
    about = requests.get(server + "/version", timeout=5).json()
    assert (about["model"], about["model_version"]) == (registry.models.iris, registry.models.champion_version)


@pytest.mark.parametrize("encoding", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"])
def test_every_input_format_predicts_what_the_model_predicts_in_process(server, iris_features, reference, encoding):
    rows = iris_features.iloc[45:55]
    if encoding == "csv":
        response = requests.post(
            server + "/invocations", data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}, timeout=10
        )
    else:
        records = rows.to_dict(orient="records")
        body = {
            "dataframe_split": _split(rows)["dataframe_split"],
            "dataframe_records": records,
            "instances": records,
            "inputs": records,
        }[encoding]
        response = requests.post(server + "/invocations", json={encoding: body}, timeout=10)

    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference[45:55]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'{"rows": []}', "application/json", 400, "exactly one of dataframe_split"),
        (
            json.dumps(
                {
                    "dataframe_records": [
                        {
                            "sepal length (cm)": "long",
                            "sepal width (cm)": 3.0,
                            "petal length (cm)": 1.0,
                            "petal width (cm)": 0.2,
                        }
                    ]
                }
            ).encode(),
            "application/json",
            400,
            "sepal length (cm)",
        ),
        (
            json.dumps({"dataframe_records": [{"sepal width (cm)": 3.0}]}).encode(),
            "application/json",
            400,
            "sepal length (cm)",
        ),
        (b"<xml/>", "application/xml", 415, "application/json or text/csv"),
        (b"x" * 300_000, "application/json", 413, "limit is 200000"),
        (
            b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "application/json",
            400,
            "nests arrays or objects too deeply",
        ),
        (
            json.dumps({"dataframe_split": {"columns": 5, "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode(),
            "application/json",
            400,
            "columns must be a list of column names",
        ),
        (
            json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})
            .replace("5.1", "9" * 5000)
            .encode(),
            "application/json",
            400,
            "not valid JSON",
        ),
        (
            json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": []}}).encode(),
            "application/json",
            400,
            "holds no rows",
        ),
        (json.dumps({"dataframe_records": []}).encode(), "application/json", 400, "holds no rows"),
        (b"sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n", "text/csv", 400, "holds no rows"),
        (("sepal length (cm)," * 8_000).encode() + b"\n", "text/csv", 400, "the CSV header must name each column once"),
        (
            b'{"dataframe_records": [{"sepal length (cm)": "\\ud800"}]}',
            "application/json",
            400,
            "lone UTF-16 surrogate",
        ),
        (
            b'{"dataframe_records": [{"sepal length (cm)": ' + b"[" * 1000 + b"]" * 1000 + b"}]}",
            "application/json",
            400,
            "expects a number (double); row 0 is a list of 1",
        ),
        # Valid JSON for Python clients, which the model refuses: the client's to fix, so not a 500.
        (
            json.dumps(
                {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[float("nan"), 3.5, 1.4, 0.2]]}}
            ).encode(),
            "application/json",
            422,
            "the model cannot score this input",
        ),
        (
            json.dumps(
                {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[float("inf"), 3.5, 1.4, 0.2]]}}
            ).encode(),
            "application/json",
            422,
            "the model cannot score this input",
        ),
        (
            json.dumps({"dataframe_records": [dict.fromkeys(IRIS_COLUMNS, 1.0)], "params": 5}).encode(),
            "application/json",
            400,
            "params must be a JSON object",
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(
    server, iris_features, reference, body, content_type, status, words
):
    response = requests.post(server + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=10)

    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert "Traceback" not in response.text
    assert requests.post(server + "/invocations", json=_split(iris_features.iloc[:1]), timeout=10).status_code == 200


def test_concurrent_requests_share_batches_and_each_gets_its_own_answer(server, iris_features, reference):
    def one(index: int):
        response = requests.post(
            server + "/invocations", json=_split(iris_features.iloc[index : index + 1]), timeout=30
        )
        return response.json()["predictions"][0]

    before = batching(server)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(len(iris_features))))
    scored, batches, alone = (after - start for after, start in zip(batching(server), before, strict=True))

    assert answers == reference
    assert scored == len(iris_features)
    assert scored - alone > scored / 2, f"{scored - alone} of {scored} requests shared a predict call ({batches:.0f})"


def test_metrics_count_requests_by_route_and_status_with_the_model_as_labels(server, registry: Registry):
    from prometheus_client.parser import text_string_to_metric_families

    def bad_requests() -> float:
        families = text_string_to_metric_families(requests.get(server + "/metrics", timeout=5).text)
        samples = [sample for family in families if family.name == "modelplane_requests" for sample in family.samples]
        wanted = {
            "model": registry.models.iris,
            "version": registry.models.champion_version,
            "route": "/invocations",
            "code": "400",
        }
        return sum(sample.value for sample in samples if sample.name.endswith("_total") and sample.labels == wanted)

    before = bad_requests()
    requests.post(server + "/invocations", data=b"{", headers={"Content-Type": "application/json"}, timeout=5)

    assert bad_requests() == before + 1
    text = requests.get(server + "/metrics", timeout=5).text
    assert "modelplane_request_seconds_bucket" in text and "modelplane_requests_in_flight" in text


def test_a_model_that_does_not_exist_stops_start_up_with_one_line(server_env: dict[str, str]):
    result = run_to_exit({**server_env, "MODELPLANE_MODEL": "models:/no-such-model@champion"}, "serve")

    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "models:/no-such-model@champion" in line
    assert "Traceback" not in result.stderr


def test_a_pickled_model_is_refused_unless_allowed(
    request, registry: Registry, server_env: dict[str, str], testbed_dir: Path
):
    custom = f"models:/{registry.models.custom}/{registry.models.custom_version}"
    refused = run_to_exit({**server_env, "MODELPLANE_MODEL": custom}, "serve")
    assert refused.returncode != 0 and "--allow-pickle" in refused.stderr and "Traceback" not in refused.stderr

    process, url = start_server(
        "serve-pickled",
        {**server_env, "MODELPLANE_MODEL": custom},
        testbed_dir / "logs",
        args=("serve", "--allow-pickle"),
    )
    show_logs_on_failure(request.config, [process])
    try:
        response = requests.post(
            url + "/invocations", json={"dataframe_split": {"columns": ["x", "y"], "data": [[1.0, 2.0]]}}, timeout=10
        )
    finally:
        process.stop()
    assert response.json()["predictions"] == [{"x": 11.0, "y": 12.0}]


def test_a_restart_reuses_the_downloaded_model(server: str, server_env: dict[str, str], testbed_dir: Path):
    # `server` downloaded the champion into the cache; a second server must not download it again.
    process, _ = start_server("serve-cached", server_env, testbed_dir / "logs")
    process.stop()
    assert "using the cached models:/iris/1" in process.log_path.read_text()


def test_strict_deps_refuses_a_model_whose_requirements_are_missing(registry: Registry, server_env: dict[str, str]):
    scans = f"models:/{registry.models.digit_scans}/1"

    result = run_to_exit({**server_env, "MODELPLANE_MODEL": scans}, "serve", "--allow-pickle", "--strict-deps")

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert registry.models.missing_requirement in line and "--strict-deps" in line
