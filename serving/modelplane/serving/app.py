"""The HTTP API: the MLflow scoring protocol, health, readiness and metrics over one
loaded model and its batcher. Errors are mapped to responses in one place."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelplane.serving.batching import AdaptiveBatcher
from modelplane.serving.errors import ModelFailed, PayloadTooLarge, ServingError
from modelplane.serving.metrics import Metrics
from modelplane.serving.model import LoadedModel
from modelplane.serving.protocols import mlflow_scoring
from modelplane.serving.settings import ServeSettings

_ERROR_CODES = {400: "BAD_REQUEST", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                500: "INTERNAL_ERROR", 503: "NOT_READY"}


def create_app(model: LoadedModel, settings: ServeSettings) -> FastAPI:
    metrics = Metrics(model.name, model.version)
    batcher = AdaptiveBatcher(model.pyfunc.predict, settings.max_batch_size, settings.max_batch_wait_ms / 1000,
                              on_batch=metrics.batch_size.observe)
    schema = model.input_schema

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="Modelplane serving", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, error: ServingError) -> JSONResponse:
        return JSONResponse({"error_code": _ERROR_CODES.get(error.status_code, "ERROR"), "message": error.message},
                            status_code=error.status_code)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            response = await call_next(request)
        finally:
            metrics.in_flight.dec()
        route = request.scope.get("route")
        path = route.path if route else "unmatched"
        metrics.requests.labels(**metrics.labels, route=path, code=str(response.status_code)).inc()
        metrics.latency.labels(**metrics.labels, route=path).observe(time.perf_counter() - started)
        return response

    async def _body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {settings.max_body_bytes}")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {settings.max_body_bytes}")
        return body

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        with batcher.arriving():
            body = await _body(request)
            data, params = mlflow_scoring.decode(body, request.headers.get("content-type", ""), schema)
        if params or not hasattr(data, "iloc"):
            # Params apply to a whole predict call, and non-tabular input has no rows to
            # join: such a request is scored on its own.
            predictions = await _predict_alone(data, params)
        else:
            predictions = await batcher.predict(data)
        return Response(mlflow_scoring.encode(predictions), media_type="application/json")

    async def _predict_alone(data, params):
        try:
            return await batcher.alone(lambda: model.pyfunc.predict(data, params=params))
        except Exception as error:  # noqa: BLE001 - the model's own failure, with its message
            raise ModelFailed(f"the model failed to predict: {error}") from None

    @app.get("/ping")
    @app.get("/health")
    @app.get("/healthz")
    @app.get("/readyz")
    async def ok() -> PlainTextResponse:
        # The model is loaded before the server listens: answering at all means ready.
        return PlainTextResponse("ok")

    @app.get("/version")
    async def versions() -> dict:
        return {"modelplane": version("modelplane"), "mlflow": version("mlflow-skinny"),
                "model": model.name, "model_version": model.version, "model_uri": model.uri}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
