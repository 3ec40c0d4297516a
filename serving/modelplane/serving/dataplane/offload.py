"""Request bodies decoded in a helper process, so the event loop never waits on them.

Parsing a 16 MiB JSON body takes about a second, most of it inside orjson, which holds
the interpreter lock throughout: on the event loop, or on a thread of the same process,
that second holds up every other request and the kubelet's probes. Small bodies can cost
as much where pandas or MLflow parse them (a CSV header naming one column 15,000 times
takes pandas seconds). A process of its own parses with a lock of its own, one body at a
time, and is killed and replaced when one body takes longer than a deadline. It is
started on the first body sent its way (a server that never gets one pays nothing for
it) and dies with the server.
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
from typing import TypeVar, TypeVarTuple

from modelplane.serving.errors import InvalidInput, ModelNotReady

T = TypeVar("T")
Arguments = TypeVarTuple("Arguments")

# From this size on every body is decoded aside: sending a smaller one to the helper and
# its result back costs more than the parse, when the parse is our own linear one.
LARGE_BODY_BYTES = 1024 * 1024
# Longest one body may take to decode; a 16 MiB body of checked columns takes about a second.
DECODE_SECONDS = 30.0


class Offload:
    def __init__(self, on_offload: Callable[[], None] = lambda: None, decode_seconds: float = DECODE_SECONDS) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._on_offload = on_offload
        self._decode_seconds = decode_seconds
        self._turn = asyncio.Lock()

    async def decode(
        self, linear: bool, decode: Callable[[bytes, *Arguments], T], body: bytes, *arguments: *Arguments
    ) -> T:
        """`decode(body, *arguments)`: in place when its cost is `linear` in the body's size
        and the body is small, else in the helper process."""
        if linear and len(body) < LARGE_BODY_BYTES:
            return decode(body, *arguments)
        self._on_offload()
        return await self.in_helper(decode, body, *arguments)

    async def in_helper(self, work: Callable[[*Arguments], T], *arguments: *Arguments) -> T:
        """`work(*arguments)` in the helper process, started if it is not running. `work`
        and its arguments must pickle: a module-level function or an object's method."""
        # One body at a time, so the deadline counts this body's decoding, not its wait
        # for others, and stopping the helper stops this body alone.
        async with self._turn:
            for attempt in (1, 2):
                pool = self._helper()
                try:
                    future = asyncio.get_running_loop().run_in_executor(pool, work, *arguments)
                    return await asyncio.wait_for(future, self._decode_seconds)
                except TimeoutError:
                    self._replace(pool)
                    raise InvalidInput(
                        f"the body took longer than {self._decode_seconds:.0f} s to decode; send it in smaller requests"
                    ) from None
                except BrokenProcessPool:
                    # The helper died since the last body (killed for memory, say): a new
                    # one is started and the body tried once more.
                    self._replace(pool)
                    if attempt == 2:
                        raise ModelNotReady("the process decoding this body stopped while reading it") from None
        raise AssertionError("unreachable")

    def _helper(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the server has threads running, which a forked child
            # would inherit in whatever state they were in.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_helper,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        """Stops `pool`'s helper, mid-body or not; the next body starts a new one."""
        # The executor can only be asked to stop, which waits for the body in hand.
        for process in list((pool._processes or {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        if self._pool is pool:
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._replace(self._pool)


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
