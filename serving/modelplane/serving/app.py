"""The HTTP API over one loaded model and its batcher: the MLflow scoring protocol and the
Open Inference Protocol (V2) on the scoring routes (scoring_routes.py), and health,
readiness, metadata and metrics on FastAPI. Errors are mapped to responses in one place
per transport, each in its protocol's own shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelplane.serving.batching import AdaptiveBatcher, batchable
from modelplane.serving.errors import ModelNotFound, ServingError, model_failure
from modelplane.serving.metrics import MeasuredRequests, Metrics
from modelplane.serving.model import LoadedModel
from modelplane.serving.offload import Offload
from modelplane.serving.protocols import mlflow_scoring, open_inference
from modelplane.serving.protocols.columns import Columns
from modelplane.serving.protocols.json_codec import JSON
from modelplane.serving.scoring_routes import PathArguments, ScoringRoutes, error_body
from modelplane.serving.settings import ServeSettings

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput


def create_app(model: LoadedModel, settings: ServeSettings) -> ScoringRoutes:
    metrics = Metrics(model.name, model.version)
    batcher = AdaptiveBatcher(
        model.pyfunc.predict,
        settings.max_batch_size,
        settings.max_batch_wait_ms / 1000,
        on_batch=metrics.batch_size.observe,
    )
    scoring = mlflow_scoring.Decoder(model.input_schema)
    inference = open_inference.Decoder(model.input_schema)
    offload = Offload(on_offload=metrics.bodies_decoded_aside.inc)

    async def predict(data: object, params: dict[str, JSON] | None) -> PyFuncOutput:
        if params is None and batchable(data):
            return await batcher.predict(data)
        # Params apply to a whole predict call, and input without rows cannot join
        # others: such a request is scored on its own.
        if isinstance(data, Columns):  # a batch of one: MLflow's predict takes a DataFrame
            data = Columns.join([data])
        try:
            return await batcher.alone(lambda: model.pyfunc.predict(data, params=params))
        except Exception as error:  # noqa: BLE001 - the model's own failure, with its message
            raise model_failure(error) from None

    async def invocations(read_body: Callable[[], Awaitable[bytes]], content_type: str, _: PathArguments) -> bytes:
        with batcher.arriving():
            body = await read_body()
            data, params = await offload.decode(scoring.reads_itself(content_type), scoring.decode, body, content_type)
        return mlflow_scoring.encode(await predict(data, params))

    async def infer(read_body: Callable[[], Awaitable[bytes]], _: str, __: PathArguments) -> bytes:
        with batcher.arriving():
            body = await read_body()
            data, params, request_id = await offload.decode(inference.reads_itself(), inference.decode, body)
        return open_inference.encode(await predict(data, params), model.name, model.version, request_id)

    def served(name: str, model_version: str | None = None) -> None:
        if name != model.name or (model_version is not None and model_version != model.version):
            wanted = f"{name} version {model_version}" if model_version else name
            raise ModelNotFound(
                f"model {wanted} is not served here; this server serves {model.name} version {model.version}"
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        if not scoring.reads_itself("application/json"):
            # Every request goes to the helper: started before the server listens, so
            # the first one does not wait for it.
            await offload.in_helper(mlflow_scoring.load_parsers)
        yield
        offload.close()
        await batcher.stop()

    app = FastAPI(title="Modelplane serving", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(MeasuredRequests, metrics=metrics)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> Response:
        return Response(
            error_body(request.url.path, error), status_code=error.status_code, media_type="application/json"
        )

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
        served(name, model_version)
        return open_inference.metadata(model.input_schema, model.name, model.version, model.dependencies)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{model_version}/ready")
    async def model_ready(name: str, model_version: str | None = None) -> dict[str, JSON]:
        served(name, model_version)
        return {"name": model.name, "ready": True}

    return ScoringRoutes(app, metrics, settings.max_body_bytes, invocations, infer, served)
