"""The HTTP API: the MLflow scoring protocol and the Open Inference Protocol (V2), health,
readiness and metrics over one loaded model and its batcher. Errors are mapped to
responses in one place, in each protocol's own shape."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelplane.serving.batching import AdaptiveBatcher, batchable
from modelplane.serving.errors import ModelFailed, ModelNotFound, PayloadTooLarge, ServingError
from modelplane.serving.metrics import Metrics
from modelplane.serving.model import LoadedModel
from modelplane.serving.protocols import mlflow_scoring, open_inference
from modelplane.serving.settings import ServeSettings

_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                500: "INTERNAL_ERROR", 503: "NOT_READY"}


def create_app(model: LoadedModel, settings: ServeSettings) -> FastAPI:
    metrics = Metrics(model.name, model.version)
    batcher = AdaptiveBatcher(model.pyfunc.predict, settings.max_batch_size, settings.max_batch_wait_ms / 1000,
                              on_batch=metrics.batch_size.observe)
    scoring = mlflow_scoring.Decoder(model.input_schema)
    inference = open_inference.Decoder(model.input_schema)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="Modelplane serving", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> JSONResponse:
        if request.url.path.startswith("/v2"):
            return JSONResponse({"error": error.message}, status_code=error.status_code)
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

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {settings.max_body_bytes}")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {settings.max_body_bytes}")
        return body

    async def predict(data, params):
        if params is None and batchable(data):
            return await batcher.predict(data)
        # Params apply to a whole predict call, and input without rows cannot join
        # others: such a request is scored on its own.
        try:
            return await batcher.alone(lambda: model.pyfunc.predict(data, params=params))
        except Exception as error:  # noqa: BLE001 - the model's own failure, with its message
            raise ModelFailed(f"the model failed to predict: {error}") from None

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        with batcher.arriving():
            body = await body_of(request)
            data, params = scoring.decode(body, request.headers.get("content-type", ""))
        return Response(mlflow_scoring.encode(await predict(data, params)), media_type="application/json")

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

    v2 = APIRouter(prefix="/v2")

    @v2.get("")
    async def server_metadata() -> dict:
        return {"name": "modelplane", "version": version("modelplane"), "extensions": []}

    @v2.get("/health/live")
    @v2.get("/health/ready")
    async def v2_health() -> dict:
        return {}

    def served(name: str, model_version: str | None = None) -> None:
        if name != model.name or (model_version is not None and model_version != model.version):
            wanted = f"{name} version {model_version}" if model_version else name
            raise ModelNotFound(f"model {wanted} is not served here; this server serves {model.name} "
                                f"version {model.version}")

    @v2.get("/models/{name}")
    @v2.get("/models/{name}/versions/{model_version}")
    async def model_metadata(name: str, model_version: str | None = None) -> dict:
        served(name, model_version)
        return open_inference.metadata(model.input_schema, model.name, model.version, model.dependencies)

    @v2.get("/models/{name}/ready")
    @v2.get("/models/{name}/versions/{model_version}/ready")
    async def model_ready(name: str, model_version: str | None = None) -> dict:
        served(name, model_version)
        return {"name": model.name, "ready": True}

    @v2.post("/models/{name}/infer")
    @v2.post("/models/{name}/versions/{model_version}/infer")
    async def infer(name: str, request: Request, model_version: str | None = None) -> Response:
        served(name, model_version)
        with batcher.arriving():
            data, params, request_id = inference.decode(await body_of(request))
        predictions = await predict(data, params)
        return Response(open_inference.encode(predictions, model.name, model.version, request_id),
                        media_type="application/json")

    app.include_router(v2)
    return app
