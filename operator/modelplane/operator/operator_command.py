"""`modelplane operator`: runs the kopf operator in the foreground."""

from __future__ import annotations

import logging
import sys

import kopf

from modelplane.operator import handlers  # noqa: F401 - importing registers the handlers
from modelplane.operator.settings import OperatorSettings, SettingsError


def main(namespaces: list[str], all_namespaces: bool, liveness: str | None) -> int:
    try:
        OperatorSettings.from_environment()  # read again by the handlers; a bad one stops here
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kopf.configure(log_prefix=True)  # INFO, each line naming its object as [namespace/name]
    # kopf logs every watch event its handlers took as a success: under a burst, thousands
    # of lines that say nothing, written by the thread that must keep reading the watches.
    # Failures still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Standalone: the chart runs one replica with a Recreate strategy, so there is never
    # a second operator to negotiate with, and none to leave paused.
    kopf.run(
        standalone=True,
        clusterwide=all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
    return 0
