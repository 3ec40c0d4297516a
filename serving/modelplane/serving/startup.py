"""What every serving command does first: logging, its settings, and its model."""

from __future__ import annotations

import logging
import sys
from typing import TypeVar

from modelplane.serving.errors import ModelLoadError
from modelplane.serving.settings import ModelSettings, from_flags

Settings = TypeVar("Settings", bound=ModelSettings)


def start(settings_type: type[Settings], overrides: dict):
    """(settings, loaded model), or the exit code after saying what is wrong: 2 for a bad
    flag or variable, 1 for a model that cannot be loaded."""
    from modelplane.serving.model import load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = from_flags(settings_type, overrides)
    if settings is None:
        return 2
    try:
        model = load(settings.model, settings.model_cache, settings.allow_pickle, settings.strict_deps)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return settings, model
