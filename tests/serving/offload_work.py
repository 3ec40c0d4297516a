"""Work for the helper process in the offload tests: module-level, so it pickles, and
importing nothing heavy, so the helper starts quickly."""

from __future__ import annotations

import os
import time
from pathlib import Path


def pid_once_allowed(started: str, allowed: str) -> int:
    """Marks that it started, waits until the test allows it to end, returns its process id."""
    Path(started).touch()
    while not Path(allowed).exists():
        time.sleep(0.01)
    return os.getpid()


def forever() -> None:
    while True:
        time.sleep(1)


def pid() -> int:
    return os.getpid()


def decoder_pid(body: bytes) -> int:
    """A decoder of any body: the process id of whoever decoded it."""
    return os.getpid()
