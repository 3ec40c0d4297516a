"""A page for people at GET /: one field per input column, generated from the model's
signature and pre-filled from its example request, that calls the server's own scoring
route and shows the prediction; and /docs, the OpenAPI document rendered for reading
and trying.

Everything the pages load comes from this server (`assets/`), under a policy that lets
them load nothing else, keep nothing and be framed by nothing: clusters are often
offline, and a model's name or example, which its author chose, is data the page shows,
never markup it runs. The pages are served by the FastAPI app, beside the scoring routes
rather than in front of them, so they cost the scoring routes nothing.
"""

from __future__ import annotations

import html
import re
from functools import cache
from importlib.resources import files
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import Response

from modelplane.serving.dataplane.columns import ColumnSchema
from modelplane.serving.model import LoadedModel
from modelplane.serving.protocols import open_inference

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {"page.js": "text/javascript", "docs.js": "text/javascript", "page.css": "text/css"}


def add_pages(app: FastAPI, model: LoadedModel) -> None:
    page = _html("page.html", model, description(model))
    docs = _html("docs.html", model, None)

    @app.get("/", include_in_schema=False)
    async def prediction_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> Response:
        return Response(docs, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @app.get("/ui/{asset}", include_in_schema=False)
    async def page_asset(asset: str) -> Response:
        if asset not in _ASSETS:
            return Response(b"not found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        return Response(_asset(asset), media_type=_ASSETS[asset], headers=SECURITY_HEADERS)


def description(model: LoadedModel) -> dict[str, Any]:
    """What the page's script builds the form from: the model, its inputs, its example."""
    columns = ColumnSchema.of(model.inputs)
    return {
        "model": model.name,
        "version": model.version,
        # One field per column where the server checks columns itself; otherwise (tensors,
        # nested types, no signature) the page offers the request's JSON to edit.
        "columns": (
            [{"name": column.name, "type": column.type, "required": column.required} for column in columns.columns]
            if columns is not None
            else None
        ),
        "tensors": open_inference.input_metadata(model.inputs) if columns is None else [],
        "example": model.serving_example,
    }


def _html(template: str, model: LoadedModel, data: dict[str, Any] | None) -> bytes:
    title = f"{model.name} · version {model.version}" if model.version else model.name
    # Data inside a script element of type application/json is never run; `<` escaped
    # so that nothing in it can close the element early.
    embedded = orjson.dumps(data).replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    values = {"title": html.escape(title), "description": embedded.decode()}
    # One pass over the template: what one value holds is never read as another's slot.
    return _SLOT.sub(lambda slot: values[slot[1]], _asset(template).decode()).encode()


_SLOT = re.compile(r"\{\{(title|description)\}\}")


@cache
def _asset(name: str) -> bytes:
    return files("modelplane.serving.http").joinpath("assets", name).read_bytes()
