"""`modelplane serve`: load the model, then answer over HTTP until SIGTERM.

With more than one worker, each process loads the model from the cache the first
download filled, pinned to the version resolved at start, so all serve the same one.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import TYPE_CHECKING, Any, TypedDict

from modelplane.contract import ENV_PREFIX
from modelplane.serving.settings import ServeSettings
from modelplane.serving.startup import run
from modelplane.serving.workers import worker_count

if TYPE_CHECKING:
    from modelplane.serving.http.routes import ScoringRoutes
    from modelplane.serving.model import LoadedModel


class _ServerOptions(TypedDict):
    """What `uvicorn.run` is given besides the app, the same with one worker or several."""

    host: str
    port: int
    access_log: bool
    log_level: str
    timeout_graceful_shutdown: int
    http: str


def main(overrides: dict[str, Any]) -> int:
    return run(ServeSettings, overrides, serve)


def serve(settings: ServeSettings, model: LoadedModel) -> int:
    import uvicorn

    from modelplane.serving.http.app import create_app
    from modelplane.serving.http.deadlines import ReadDeadlines

    # The loaded libraries leave a few million long-lived objects; a full collection that
    # walks them all stalls every request in flight for a tenth of a second.
    gc.freeze()
    workers = worker_count(settings.workers)
    serving: _ServerOptions = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 30,
        "http": "modelplane.serving.http.deadlines:ReadDeadlines",
    }
    ReadDeadlines.configure(settings.header_timeout_seconds, settings.body_timeout_seconds)
    if workers == 1:
        uvicorn.run(create_app(model, settings), **serving)
        return 0
    logging.getLogger(__name__).info("starting %d workers", workers)
    pinned = f"models:/{model.name}/{model.version}" if model.version else settings.model
    os.environ.update(_environment(settings, model=pinned))
    uvicorn.run("modelplane.serving.serve_command:worker_app", factory=True, workers=workers, **serving)
    return 0


def worker_app() -> ScoringRoutes:
    """The app of one worker process, configured by the environment its parent set."""
    from modelplane.serving.http.app import create_app
    from modelplane.serving.http.deadlines import ReadDeadlines
    from modelplane.serving.model import load

    # Its required model comes from the environment, which the settings' signature cannot show.
    settings = ServeSettings()  # type: ignore[call-arg]
    ReadDeadlines.configure(settings.header_timeout_seconds, settings.body_timeout_seconds)
    app = create_app(load(settings.model, settings.model_cache, settings.allow_pickle), settings)
    gc.freeze()
    return app


def _environment(settings: ServeSettings, **changes: str) -> dict[str, str]:
    values = {**settings.model_dump(mode="json"), **changes}
    return {
        f"{ENV_PREFIX}{key.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in values.items()
    }
