"""The prediction page and the API page, in a real browser against a real server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import Registry
from tests.serving.http.browser import Browser, chromium
from tests.testbed.registry import digit_scan

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def browser() -> Browser:
    with chromium() as started:
        yield started


def _only_from(server: str, requested: list[str]) -> None:
    # blob: URLs are the person's own files, shown before they are sent.
    outside = [url for url in requested if not url.startswith((server + "/", f"blob:{server}/", "data:"))]
    assert not outside, f"the page loaded from outside the server: {outside}"


def test_the_iris_page_shows_its_example_and_the_prediction(
    server: str, browser: Browser, reference, registry: Registry, tmp_path: Path
):
    import mlflow.artifacts

    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{registry.models.iris}@champion", dst_path=tmp_path))
    example = json.loads((folder / "serving_input_example.json").read_text())["dataframe_split"]

    with browser.open(server + "/") as visit:
        page = visit.page
        fields = page.locator("#fields input[type=number]")
        assert fields.count() == 4
        assert [page.locator(f"label[for={fields.nth(i).get_attribute('id')}]").text_content() for i in range(4)] == (
            example["columns"]
        )
        assert [float(fields.nth(i).input_value()) for i in range(4)] == example["data"][0]

        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])")

        assert page.text_content("#prediction") == str(reference[0])
        assert registry.models.iris in page.text_content("#answered-by")
        # The README's picture of the page (scripts/screenshots), taken of what was just checked.
        pictures = Path(os.environ.get("MODELPLANE_SCREENSHOTS", tmp_path))
        page.set_viewport_size({"width": 900, "height": 640})
        page.screenshot(path=str(pictures / "prediction-page.png"), full_page=True)
        assert json.loads(page.text_content("#response-body")) == {"predictions": [reference[0]]}
        _only_from(server, visit.requested)
        assert f"{server}/invocations" in visit.requested


def test_a_refused_request_reads_as_a_message(server: str, browser: Browser):
    with browser.open(server + "/") as visit:
        page = visit.page
        page.click("#raw-request summary")
        page.fill(
            "#request-body",
            json.dumps({"dataframe_split": {"columns": ["sepal length (cm)"], "data": [["long"]]}}),
        )
        page.click("#send-raw")
        page.wait_for_selector("#error:not([hidden])")

        message = page.text_content("#error")
        assert message.startswith("The model could not score this input (400")
        assert "sepal length (cm)" in message and "{" not in message
        assert page.is_hidden("#result")


def test_the_image_page_previews_an_upload_and_shows_its_class(
    serve_model, browser: Browser, registry: Registry, tmp_path: Path
):
    """The scan classifier of examples/digit_scans.py, served without --allow-pickle."""
    import mlflow.pyfunc
    import pandas as pd
    from sklearn.datasets import load_digits

    model_uri = f"models:/{registry.models.scans}@champion"
    url = serve_model(model_uri)
    images, _ = load_digits(return_X_y=True)
    scan = digit_scan(images[17])
    (tmp_path / "scan.png").write_bytes(scan)
    expected = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"image": [scan]})).iloc[0]

    with browser.open(url + "/") as visit:
        page = visit.page
        example = page.wait_for_selector("#fields img.preview:not([hidden])")  # the model's own example
        page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=example)
        page.set_input_files("#fields input[type=file]", str(tmp_path / "scan.png"))
        preview = page.wait_for_selector("#fields img.preview[src^=blob]")
        page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=preview)
        assert preview.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [8, 8]

        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])")

        header = [cell.text_content() for cell in page.query_selector_all("#prediction th")]
        row = [cell.text_content() for cell in page.query_selector_all("#prediction td")]
        assert header == ["class", "probability"]
        assert int(row[0]) == expected["class"]
        assert float(row[1]) == pytest.approx(expected["probability"])
        _only_from(url, visit.requested)


def test_the_model_s_own_text_is_shown_never_run(serve_model, browser: Browser, registry: Registry, tmp_path: Path):
    """A model's author chooses its name and its example: markup in them stays text."""
    import mlflow.artifacts

    folder = tmp_path / "<img id=named src=x onerror=alert(1)>"
    shutil.copytree(mlflow.artifacts.download_artifacts(f"models:/{registry.models.iris}/1"), folder)
    breakout = '</script><img id="injected" src=x onerror="alert(2)"><script>alert(3)</script>'
    (folder / "serving_input_example.json").write_text(
        json.dumps({"dataframe_records": [{"sepal length (cm)": breakout, "sepal width (cm)": 3.5}]})
    )
    url = serve_model(str(folder))

    with browser.open(url + "/") as visit:
        page = visit.page
        page.wait_for_selector("#fields input")

        assert page.locator("#named, #injected").count() == 0
        assert page.text_content("#model-title") == folder.name
        assert page.title() == folder.name
        shown = json.loads(page.input_value("#request-body"))
        assert shown["dataframe_records"][0]["sepal length (cm)"] == breakout
        assert page.locator("#fields input").nth(1).input_value() == "3.5"
        assert visit.dialogs == []
        _only_from(url, visit.requested)


def test_the_pages_load_nothing_else_and_keep_nothing(server: str):
    for path in ("/", "/docs", "/ui/page.js", "/ui/docs.js", "/ui/page.css"):
        response = requests.get(server + path, timeout=10)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "set-cookie" not in response.headers
    assert requests.get(server + "/ui/..%2Fpage.py", timeout=10).status_code == 404
    assert requests.get(server + "/ui/page.html", timeout=10).status_code == 404


def test_the_api_page_sends_the_documented_example(server: str, browser: Browser, reference):
    with browser.open(server + "/docs") as visit:
        page = visit.page
        operation = page.wait_for_selector("#invocations")
        operation.query_selector("button").click()
        answer = page.wait_for_selector("#invocations pre.answer:not([hidden])")

        status, _, body = answer.text_content().partition("\n\n")
        assert status == "200 OK"
        assert json.loads(body) == {"predictions": reference[:3]}
        _only_from(server, visit.requested)


def test_no_ui_serves_no_pages(serve_model, registry: Registry, iris_features):
    iris_row = iris_features.iloc[0].to_dict()
    url = serve_model(f"models:/{registry.models.iris}@champion", "--no-ui")

    assert requests.get(url + "/", timeout=10).status_code == 404
    assert requests.get(url + "/docs", timeout=10).status_code == 404
    assert requests.get(url + "/ui/page.js", timeout=10).status_code == 404
    assert requests.get(url + "/openapi.json", timeout=10).status_code == 200
    scored = requests.post(url + "/invocations", json={"dataframe_records": [iris_row]}, timeout=10)
    assert scored.status_code == 200 and len(scored.json()["predictions"]) == 1
