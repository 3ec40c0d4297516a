"""The HTTP API over one loaded model's data plane: the MLflow scoring protocol and the
Open Inference Protocol (V2) on the scoring routes (routes.py), and health, readiness,
metadata, metrics, the OpenAPI document and the page for people (page.py) on FastAPI
behind them. Errors become responses in the routes'
app and in one FastAPI handler, each in its protocol's own shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.dataplane.plane import DataPlane
from modelplane.serving.errors import ServingError
from modelplane.serving.http import openapi
from modelplane.serving.http.metrics import Metrics
from modelplane.serving.http.page import add_pages
from modelplane.serving.http.routes import ScoringRoutes, error_body
from modelplane.serving.model import LoadedModel
from modelplane.serving.protocols import mlflow_scoring, open_inference
from modelplane.serving.settings import ServeSettings


def create_app(model: LoadedModel, settings: ServeSettings) -> ScoringRoutes:
    metrics = Metrics(model.name, model.version)
    plane = DataPlane(
        model,
        settings.max_batch_size,
        settings.max_batch_wait_ms / 1000,
        on_batch=metrics.batch_size.observe,
        on_offload=metrics.bodies_decoded_aside.inc,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Without checked columns every request goes to the decoding helper: started
        # before the server listens, so the first one does not wait for it.
        await plane.start(preload=None if plane.columns is not None else mlflow_scoring.load_parsers)
        yield
        await plane.stop()

    app = FastAPI(title="Modelplane serving", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> Response:
        return Response(
            error_body(request.url.path, error), status_code=error.status_code, media_type="application/json"
        )

    documents: list[dict[str, JSON]] = []

    @app.get("/openapi.json")
    async def openapi_json() -> dict[str, JSON]:
        # Built when first asked for, aside from the event loop: describing a tensor may
        # take MLflow's types, which a model Modelplane reads itself starts without.
        if not documents:
            documents.append(await asyncio.to_thread(openapi.document, model))
        return documents[0]

    if settings.ui:
        add_pages(app, model)

    @app.get("/ping")
    @app.get("/health")
    @app.get("/healthz")
    @app.get("/readyz")
    async def ok() -> PlainTextResponse:
        # The model is loaded before the server listens: answering at all means ready.
        return PlainTextResponse("ok")

    @app.get("/version")
    async def versions() -> dict[str, JSON]:
        return {
            "modelplane": version("modelplane"),
            "mlflow": version("mlflow-skinny"),
            "model": model.name,
            "model_version": model.version,
            "model_uri": model.uri,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v2")
    async def server_metadata() -> dict[str, JSON]:
        return {"name": "modelplane", "version": version("modelplane"), "extensions": []}

    @app.get("/v2/health/live")
    @app.get("/v2/health/ready")
    async def v2_health() -> dict[str, JSON]:
        return {}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{model_version}")
    async def model_metadata(name: str, model_version: str | None = None) -> dict[str, JSON]:
        plane.require_model(name, model_version)
        return open_inference.metadata(model.inputs, model.name, model.version, model.dependencies)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{model_version}/ready")
    async def model_ready(name: str, model_version: str | None = None) -> dict[str, JSON]:
        plane.require_model(name, model_version)
        return {"name": model.name, "ready": True}

    return ScoringRoutes(plane, app, metrics, settings.max_body_bytes)
