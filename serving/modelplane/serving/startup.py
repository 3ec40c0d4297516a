"""What every serving command does first (logging, its settings, its model), and how it
stops when it cannot go on."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelplane.serving.errors import ModelLoadError
from modelplane.serving.settings import ModelSettings, from_flags

if TYPE_CHECKING:
    from modelplane.serving.model import LoadedModel

Settings = TypeVar("Settings", bound=ModelSettings)
# What a command does once its settings are read and its model is loaded; its exit code.
Command = Callable[[Settings, "LoadedModel"], int]


def run(settings_type: type[Settings], overrides: dict[str, Any], command: Command[Settings]) -> int:
    """Reads the settings, loads the model and runs `command` with both; the exit code.
    Before the command runs, it stops after saying what is wrong: with 2 for a bad flag
    or variable, with 1 for a model that cannot be loaded."""
    from modelplane.serving.model import load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = from_flags(settings_type, overrides)
    if settings is None:
        return 2
    try:
        model = load(settings.model, settings.model_cache, settings.allow_pickle, settings.strict_deps)
    except ModelLoadError as error:
        return stop(str(error))
    # What start-up built (modules, the model) lives as long as the process. Moved out of
    # the collector's sight, it is not walked again by every collection that a request's
    # or an event's allocations set off, which was a third of a stream's Python per event.
    # (No collection first: it finds next to nothing here and costs a tenth of a second.)
    gc.freeze()
    return command(settings, model)


# Where Kubernetes takes a container's termination message from, unless its pod says
# otherwise (the operator leaves the default); the kubelet mounts it into the container.
TERMINATION_LOG = Path("/dev/termination-log")


def stop(message: str) -> int:
    """Says why the command cannot go on, in one line on stderr and, in a pod, as its
    termination message (which the operator shows in the ModelDeployment's status); the
    exit code to stop with."""
    print(f"error: {message}", file=sys.stderr)
    if TERMINATION_LOG.is_file():
        # If it cannot be written, stderr has it; the pod's status then only says the container failed.
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(message)
    return 1
