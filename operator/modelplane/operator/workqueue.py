"""A deduplicating work queue, as controller-runtime's: work queued again under the same
key before a worker takes it is done once, the latest version of it; one key is never
worked on by two workers at once; work that fails is tried again after a delay that
doubles with each failure in a row.

A Deployment's status changes several times while its pods start; under a burst of
creations, each ModelDeployment then catches up once with the latest of what its
workload says, not once per event. Urgent work (making a resource's workload) is taken
before the rest, which waits while urgent work is queued or under way, so under a burst
every resource gets its workload before earlier ones catch up with their status, and
the API server's time goes to the workloads."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

logger = logging.getLogger(__name__)
Work = Callable[[], None]


class TryAgain(Exception):
    """Raised by work that failed for a reason it has reported itself: tried again later,
    without a traceback in the log."""


class WorkQueue:
    """Used from the event loop's thread, but for `add_threadsafe`; the work itself runs in
    the queue's threads."""

    def __init__(self, first_retry_seconds: float = 5.0, longest_retry_seconds: float = 300.0):
        # Each in the order first queued; a key is in at most one of them.
        self._urgent: dict[Hashable, tuple[Work, bool]] = {}
        self._ordinary: dict[Hashable, tuple[Work, bool]] = {}
        self._working: set[Hashable] = set()
        self._ordinary_working = 0
        self._failures: dict[Hashable, int] = {}  # failures in a row, of work that retries
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first_retry_seconds, self._longest_retry_seconds = first_retry_seconds, longest_retry_seconds

    def add(self, key: Hashable, work: Work, urgent: bool = False, retry: bool = False) -> None:
        """Queues `work` under `key`, replacing work not yet started under it; with
        `retry`, work that fails is queued again later, unless other work under its key
        was queued meanwhile."""
        (self._ordinary if urgent else self._urgent).pop(key, None)
        (self._urgent if urgent else self._ordinary)[key] = work, retry
        self._changed.set()

    def add_threadsafe(self, key: Hashable, work: Work, urgent: bool = False, retry: bool = False) -> None:
        """`add`, from another thread (a piece of work queuing what follows it)."""
        loop = cast(asyncio.AbstractEventLoop, self._loop)  # set by `serve`, which runs the work that calls this
        loop.call_soon_threadsafe(functools.partial(self.add, key, work, urgent, retry))

    def _add_again(self, key: Hashable, work: Work, urgent: bool) -> None:
        if key not in self._urgent and key not in self._ordinary:
            self.add(key, work, urgent, retry=True)

    def queued(self) -> list[tuple[Hashable, bool]]:
        """(key, urgent) of the work queued and not yet started, urgent first."""
        return [(key, True) for key in self._urgent] + [(key, False) for key in self._ordinary]

    def __len__(self) -> int:
        """Pieces of work queued or under way."""
        return len(self._urgent) + len(self._ordinary) + len(self._working)

    async def _take(self, ordinary_workers: int) -> tuple[Hashable, Work, bool, bool]:
        while True:
            urgent_working = len(self._working) - self._ordinary_working
            for urgent, queued in ((True, self._urgent), (False, self._ordinary)):
                if not urgent and (self._ordinary_working >= ordinary_workers or self._urgent or urgent_working):
                    break
                key = next((key for key in queued if key not in self._working), None)
                if key is not None:
                    self._working.add(key)
                    self._ordinary_working += not urgent
                    return key, *queued.pop(key), urgent
            self._changed.clear()
            await self._changed.wait()

    def _done(self, key: Hashable, urgent: bool) -> None:
        self._working.discard(key)
        self._ordinary_working -= not urgent
        self._changed.set()  # the same key may have been queued again meanwhile

    def _failed(self, key: Hashable, work: Work, urgent: bool, error: Exception) -> None:
        failures = self._failures.get(key, 0)
        delay = min(self._longest_retry_seconds, self._first_retry_seconds * 2**failures)
        self._failures[key] = failures + 1
        if isinstance(error, TryAgain):
            logger.warning("%s: %s; trying again in %.0f s", key, error, delay)
        else:
            logger.error("%s failed; trying again in %.0f s", key, delay, exc_info=error)
        asyncio.get_running_loop().call_later(delay, self._add_again, key, work, urgent)

    async def serve(self, workers: int, ordinary_workers: int | None = None) -> None:
        """Does the queued work with `workers` threads at a time, until cancelled; work
        that is not urgent only while no urgent work waits or is under way, with at most
        `ordinary_workers` of them (by default, all)."""
        loop = self._loop = asyncio.get_running_loop()
        ordinary_workers = workers if ordinary_workers is None else ordinary_workers

        async def worker(threads: ThreadPoolExecutor) -> None:
            while True:
                key, work, retry, urgent = await self._take(ordinary_workers)
                try:
                    await loop.run_in_executor(threads, work)
                except Exception as error:  # one resource's failure must not stop the others' work
                    if retry:
                        self._failed(key, work, urgent, error)
                    else:
                        logger.error("%s failed", key, exc_info=error)
                else:
                    self._failures.pop(key, None)
                finally:
                    self._done(key, urgent)

        threads = ThreadPoolExecutor(workers, thread_name_prefix="work")
        try:
            await asyncio.gather(*(worker(threads) for _ in range(workers)))
        finally:
            threads.shutdown(wait=False, cancel_futures=True)  # not to hold up the event loop
