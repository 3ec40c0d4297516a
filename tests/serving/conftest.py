"""Fixtures of the serving tests: the iris champion served once for all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Registry, show_logs_on_failure
from tests.serving.server import start_server


@pytest.fixture(scope="package")
def iris_features():
    from modelplane.demo import iris_features

    features, _ = iris_features()
    return features


@pytest.fixture(scope="package")
def reference(registry: Registry, iris_features):
    """What the champion predicts in-process, row by row."""
    import mlflow.pyfunc

    return list(mlflow.pyfunc.load_model(f"models:/{registry.models.iris}@champion").predict(iris_features))


@pytest.fixture(scope="package")
def server_env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MODELPLANE_MODEL": f"models:/{registry.models.iris}@champion",
        "MODELPLANE_MODEL_CACHE": str(tmp_path_factory.mktemp("model-cache")),
        "MODELPLANE_MAX_BODY_BYTES": "200000",
    }


@pytest.fixture(scope="package")
def server(request: pytest.FixtureRequest, server_env: dict[str, str], testbed_dir: Path) -> str:
    process, url = start_server("serve-iris", server_env, testbed_dir / "logs")
    show_logs_on_failure(request.config, [process])
    yield url
    process.stop()


@pytest.fixture(scope="package")
def serve_model(request: pytest.FixtureRequest, server_env: dict[str, str], testbed_dir: Path):
    """Serves another registry model (once per URI and flags, for the whole package); its URL."""
    started: dict[tuple[str, ...], tuple] = {}

    def serve(model_uri: str, *flags: str) -> str:
        key = (model_uri, *flags)
        if key not in started:
            name = "serve-" + model_uri.rsplit("/", 1)[-1].replace("@", "-")
            started[key] = start_server(
                name, {**server_env, "MODELPLANE_MODEL": model_uri}, testbed_dir / "logs", args=("serve", *flags)
            )
            show_logs_on_failure(request.config, [started[key][0]])
        return started[key][1]

    yield serve
    for process, _ in started.values():
        process.stop()
