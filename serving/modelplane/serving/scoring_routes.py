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
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.serving.errors import ClientGone, PayloadTooLarge, ServingError
from modelplane.serving.metrics import Metrics

log = logging.getLogger(__name__)


class PathArguments(TypedDict, total=False):
    """What a scoring route's path names: the model (and version) of V2's infer route."""

    name: str
    version: str | None


# (a coroutine reading the body, the content type, the path's arguments) to a JSON body;
# the handler reads the body itself, so the batcher knows a request is on its way in.
Handler = Callable[[Callable[[], Awaitable[bytes]], str, PathArguments], Awaitable[bytes]]
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
    def __init__(
        self,
        fallback: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        invocations: Handler,
        infer: Handler,
        served: Callable[[str, str | None], None],
    ) -> None:
        self._fallback, self._metrics, self._max_body_bytes = fallback, metrics, max_body_bytes
        self._invocations, self._infer, self._served = invocations, infer, served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == INVOCATIONS:
                return await self._answer(INVOCATIONS, self._invocations, {}, scope, receive, send)
            if (match := V2_INFER.match(path)) is not None:
                route = (
                    "/v2/models/{name}/versions/{model_version}/infer"
                    if match["version"]
                    else "/v2/models/{name}/infer"
                )
                # The pattern's name group always matches, its version group may not.
                arguments = cast(PathArguments, match.groupdict())
                return await self._answer(route, self._infer, arguments, scope, receive, send)
        return await self._fallback(scope, receive, send)

    async def _answer(
        self, route: str, handler: Handler, arguments: PathArguments, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        metrics = self._metrics
        metrics.in_flight.inc()
        status = 500
        try:
            try:
                if "name" in arguments:
                    self._served(arguments["name"], arguments["version"])
                content_type = _header(scope, b"content-type")
                status, body = 200, await handler(lambda: self._body(scope, receive), content_type, arguments)
            except ServingError as error:
                status, body = error.status_code, error_body(route, error)
            except Exception:  # a bug of ours: logged with its traceback, answered without
                log.exception("unexpected error on %s", route)
                status, body = 500, error_body(route, ServingError("internal error; see the server log"))
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            metrics.in_flight.dec()
            metrics.observe(route, status, time.perf_counter() - started)

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


def _header(scope: Scope, name: bytes) -> str:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""
