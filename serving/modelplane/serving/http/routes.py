"""The scoring routes as plain ASGI, in front of the FastAPI app that serves the rest.

A one-row request spends more time in a framework's layers (middleware stacks, task
groups, dependency resolution) than in its share of a batched predict call, so the two
routes that carry the load read the body, decode, batch, encode and answer here, with
the same errors, limits and metrics as any other route.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypedDict, cast

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.serving.dataplane.plane import DataPlane
from modelplane.serving.errors import ClientGone, PayloadTooLarge, ServingError
from modelplane.serving.http.metrics import Metrics
from modelplane.serving.protocols import mlflow_scoring, open_inference

log = logging.getLogger(__name__)


class PathArguments(TypedDict, total=False):
    """What a scoring route's path names: the model (and version) of V2's infer route."""

    name: str
    version: str | None


INVOCATIONS = "/invocations"
V2_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_PARAMETER_VALUE",
    500: "INTERNAL_ERROR",
    503: "NOT_READY",
}


def error_body(path: str, error: ServingError) -> bytes:
    """An error in the shape of the route's protocol: V2's {"error"}, else MLflow's."""
    body = (
        {"error": error.message}
        if path.startswith("/v2")
        else {"error_code": _ERROR_CODES.get(error.status_code, "ERROR"), "message": error.message}
    )
    try:
        return orjson.dumps(body)
    except TypeError:  # a message quoting text orjson will not write (a model's, say): escaped instead
        return json.dumps(body, ensure_ascii=True).encode()


class ScoringRoutes:
    """The server's ASGI app: the scoring routes answered here, over the data plane,
    every other route by `fallback` (FastAPI); every request counted and timed once."""

    def __init__(self, plane: DataPlane, fallback: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self._plane, self._fallback, self._metrics, self._max_body_bytes = plane, fallback, metrics, max_body_bytes
        inputs = plane.model.inputs
        self._scoring, self._inference = mlflow_scoring.Decoder(inputs), open_inference.Decoder(inputs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan and websockets, which FastAPI answers
            return await self._fallback(scope, receive, send)
        started = time.perf_counter()
        metrics = self._metrics
        metrics.in_flight.inc()
        scoring = _scoring_route(scope)
        route, status = "unmatched", 500
        try:
            if scoring is not None:
                route, handler, arguments = scoring
                status, body = await self._score(route, handler, arguments, scope, receive)
                await _send_json(send, status, body)
                return

            async def send_and_note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self._fallback(scope, receive, send_and_note)
        finally:
            if scoring is None and (matched := scope.get("route")) is not None:
                route = matched.path  # set by FastAPI's router on the scope it was given, even if it raised
            metrics.in_flight.dec()
            metrics.observe(route, status, time.perf_counter() - started)

    async def invocations(self, scope: Scope, receive: Receive, _: PathArguments) -> bytes:
        """MLflow's scoring protocol: JSON or CSV in, {"predictions"} out."""
        content_type = _header(scope, b"content-type")
        decoder = self._scoring
        data, params = await self._plane.receive(
            lambda: self._body(scope, receive), decoder.reads_itself(content_type), decoder.decode, content_type
        )
        return mlflow_scoring.encode(await self._plane.predict(data, params))

    async def infer(self, scope: Scope, receive: Receive, arguments: PathArguments) -> bytes:
        """The Open Inference Protocol's infer: named tensors in and out."""
        plane = self._plane
        plane.require_model(arguments["name"], arguments.get("version"))
        decoder = self._inference
        data, params, request_id = await plane.receive(
            lambda: self._body(scope, receive), decoder.reads_itself(), decoder.decode
        )
        predictions = await plane.predict(data, params)
        return open_inference.encode(predictions, plane.model.name, plane.model.version, request_id)

    async def _score(
        self, route: str, handler: Handler, arguments: PathArguments, scope: Scope, receive: Receive
    ) -> tuple[int, bytes]:
        """A scoring request's status code and body, an error in its protocol's shape."""
        try:
            return 200, await handler(self, scope, receive, arguments)
        except ServingError as error:
            return error.status_code, error_body(route, error)
        except Exception:  # a bug of ours: logged with its traceback, answered without
            log.exception("unexpected error on %s", route)
            return 500, error_body(route, ServingError("internal error; see the server log"))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self._max_body_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("the connection closed before the whole body arrived")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over {limit} bytes; the limit is {limit}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# A scoring route's handler: its request's scope and body stream, and its path's arguments,
# to the JSON body answered.
Handler = Callable[[ScoringRoutes, Scope, Receive, PathArguments], Awaitable[bytes]]


def _scoring_route(scope: Scope) -> tuple[str, Handler, PathArguments] | None:
    """(the route's metric label, its handler, its path's arguments) of a scoring request."""
    if scope["method"] != "POST":
        return None
    path = scope["path"]
    if path == INVOCATIONS:
        return INVOCATIONS, ScoringRoutes.invocations, {}
    if (match := V2_INFER.match(path)) is not None:
        route = "/v2/models/{name}/versions/{model_version}/infer" if match["version"] else "/v2/models/{name}/infer"
        # The pattern's name group always matches, its version group may not.
        return route, ScoringRoutes.infer, cast(PathArguments, match.groupdict())
    return None


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""
