"""A deduplicating work queue, as controller-runtime's: work queued again under the same
key before a worker takes it is done once, the latest version of it; one key is never
worked on by two workers at once.

A Deployment's status changes several times while its pods start; under a burst of
creations, each ModelDeployment then catches up once with the latest of what its
workload says, not once per event, which leaves the API server to the creations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

logger = logging.getLogger(__name__)
Work = Callable[[], None]


class WorkQueue:
    """Used from the event loop's thread only; the work itself runs in threads."""

    def __init__(self):
        self._queued: dict[Hashable, tuple[Work, float | None]] = {}  # in the order first queued
        self._working: set[Hashable] = set()
        self._changed = asyncio.Event()

    def add(self, key: Hashable, work: Work, retry_seconds: float | None = None) -> None:
        """Queues `work` under `key`; with `retry_seconds`, work that fails is queued
        again that much later, unless other work under its key was queued meanwhile."""
        self._queued[key] = (work, retry_seconds)
        self._changed.set()

    def _add_again(self, key: Hashable, work: Work, retry_seconds: float) -> None:
        if key not in self._queued:
            self.add(key, work, retry_seconds)

    def __len__(self) -> int:
        """Pieces of work queued or under way."""
        return len(self._queued) + len(self._working)

    async def _take(self) -> tuple[Hashable, tuple[Work, float | None]]:
        while True:
            key = next((key for key in self._queued if key not in self._working), None)
            if key is not None:
                self._working.add(key)
                return key, self._queued.pop(key)
            self._changed.clear()
            await self._changed.wait()

    def _done(self, key: Hashable) -> None:
        self._working.discard(key)
        self._changed.set()  # the same key may have been queued again meanwhile

    async def serve(self, workers: int) -> None:
        """Does the queued work with `workers` threads at a time, until cancelled."""
        async def worker() -> None:
            while True:
                key, (work, retry_seconds) = await self._take()
                try:
                    await asyncio.to_thread(work)
                except Exception:
                    # One resource's failure must not stop the work of the others.
                    logger.exception("%s failed%s", key, f"; trying again in {retry_seconds:.0f} s"
                                     if retry_seconds is not None else "")
                    if retry_seconds is not None:
                        asyncio.get_running_loop().call_later(retry_seconds, self._add_again, key, work, retry_seconds)
                finally:
                    self._done(key)

        await asyncio.gather(*(worker() for _ in range(workers)))
