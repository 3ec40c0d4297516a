"""Large request bodies decoded in a helper process, so the event loop never waits on them.

Parsing a 16 MiB JSON body takes about a second, most of it inside orjson, which holds
the interpreter lock throughout: on the event loop, or on a thread of the same process,
that second holds up every other request and the kubelet's probes. A process of its own
parses with a lock of its own. It is started on the first large body (a server that never
gets one pays nothing for it), does one body at a time, and dies with the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from modelplane.serving.errors import ModelNotReady

T = TypeVar("T")

# Below this a body is decoded in place: sending it to the helper and the result back
# costs more than the parse.
LARGE_BODY_BYTES = 1024 * 1024


class Offload:
    def __init__(self, on_offload: Callable[[], None] = lambda: None) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._on_offload = on_offload

    async def run(self, body: bytes, work: Callable[..., T], *arguments) -> T:
        """`work(*arguments)` in place for a small body, in the helper process for a large one.
        `work` and its arguments must pickle: a module-level function or an object's method."""
        if len(body) < LARGE_BODY_BYTES:
            return work(*arguments)
        loop = asyncio.get_running_loop()
        self._on_offload()
        try:
            return await loop.run_in_executor(self._helper(), work, *arguments)
        except BrokenProcessPool:
            # The helper died (killed for memory, say): the next large body starts another.
            self._pool = None
            raise ModelNotReady("the process decoding large bodies stopped while reading this one; "
                                "send it again") from None

    def _helper(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the server has threads running, which a forked child
            # would inherit in whatever state they were in.
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_helper, initargs=(os.getpid(),))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _start_helper(server: int) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the server stops the helper.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        import ctypes

        # The kernel kills the helper when the server goes, however the server goes.
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server:  # the server went before the line above ran
            os._exit(0)
