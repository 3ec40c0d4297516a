"""`modelplane serve`: load the model, then answer over HTTP until SIGTERM."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from modelplane.serving.errors import ModelLoadError
from modelplane.serving.settings import ServeSettings


def settings_from(overrides: dict) -> ServeSettings:
    """Flags given on the command line over MODELPLANE_* variables over defaults."""
    return ServeSettings(**{key: value for key, value in overrides.items() if value is not None})


def main(overrides: dict) -> int:
    import uvicorn

    from modelplane.serving.app import create_app
    from modelplane.serving.model import load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(overrides)
    except ValidationError as error:
        for problem in error.errors():
            field = str(problem["loc"][0])
            print(f"error: --{field.replace('_', '-')} (MODELPLANE_{field.upper()}): {problem['msg']}", file=sys.stderr)
        return 2
    try:
        model = load(settings.model, settings.model_cache, settings.allow_pickle)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    uvicorn.run(create_app(model, settings), host=settings.host, port=settings.port,
                access_log=False, log_level="info", timeout_graceful_shutdown=30)
    return 0
