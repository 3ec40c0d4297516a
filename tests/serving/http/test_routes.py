"""The server's ASGI app on its own, called as uvicorn calls it: every request is counted
once under its route's label, also when the route it was handed to raised."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from mlflow.types import ColSpec, Schema

from modelplane.serving.dataplane.plane import DataPlane
from modelplane.serving.http.metrics import Metrics
from modelplane.serving.http.routes import ScoringRoutes
from modelplane.serving.model import LoadedModel
from modelplane.serving.model_file import Specs


class Unused:
    """A model no request of these tests reaches."""

    def predict(self, data, params=None):
        raise AssertionError("not scored here")


def _app() -> tuple[ScoringRoutes, Metrics]:
    model = LoadedModel(
        "models:/m/1",
        "m",
        "1",
        path=None,  # type: ignore[arg-type]
        make_pyfunc=Unused,  # type: ignore[arg-type]
        inputs=Specs(Schema([ColSpec("double", "x")]).to_json()),
    )
    fastapi = FastAPI()

    @fastapi.get("/v2/models/{name}")
    async def broken(name: str) -> None:
        raise RuntimeError("a bug in a route")

    metrics = Metrics("m", "1")
    return ScoringRoutes(DataPlane(model, 32, 0.0), fastapi, metrics, 1024), metrics


async def _get(app: ScoringRoutes, path: str) -> None:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)


def test_a_request_whose_route_raised_is_counted_under_that_route():
    app, metrics = _app()

    with pytest.raises(RuntimeError, match="a bug in a route"):
        asyncio.run(_get(app, "/v2/models/m"))

    counted = metrics.requests.labels(model="m", version="1", route="/v2/models/{name}", code="500")
    assert counted._value.get() == 1
    assert metrics.in_flight._value.get() == 0


def test_a_request_no_route_matches_is_counted_as_unmatched():
    app, metrics = _app()

    asyncio.run(_get(app, "/nowhere"))

    assert metrics.requests.labels(model="m", version="1", route="unmatched", code="404")._value.get() == 1
