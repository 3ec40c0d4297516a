"""The operator's work queue: latest work per key, one worker per key, failures contained."""

from __future__ import annotations

import asyncio
import threading
import time

from modelplane.operator.workqueue import WorkQueue


def _serve_until_empty(queue: WorkQueue, workers: int) -> None:
    async def serve() -> None:
        serving = asyncio.create_task(queue.serve(workers))
        while len(queue):
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(serve())


def test_work_queued_again_under_one_key_before_it_starts_is_done_once_in_its_latest_version():
    queue, done = WorkQueue(), []
    for version in range(5):
        queue.add("a", lambda version=version: done.append(("a", version)))
    queue.add("b", lambda: done.append(("b", 0)))
    _serve_until_empty(queue, workers=2)
    assert sorted(done) == [("a", 4), ("b", 0)]


def test_one_key_is_never_worked_on_by_two_workers_at_once():
    queue, running, overlaps, done = WorkQueue(), set(), [], []
    lock = threading.Lock()

    def work(key: str, version: int) -> None:
        with lock:
            if key in running:
                overlaps.append(key)
            running.add(key)
        time.sleep(0.05)
        with lock:
            running.discard(key)
            done.append((key, version))

    async def produce() -> None:
        serving = asyncio.create_task(queue.serve(workers=4))
        for version in range(3):
            for key in "ab":
                queue.add(key, lambda key=key, version=version: work(key, version))
            await asyncio.sleep(0.02)  # while the first version of each is being worked on
        while len(queue):
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(produce())
    assert overlaps == []
    assert ("a", 2) in done and ("b", 2) in done, "the latest version is done after the running one"


def test_a_failing_piece_of_work_does_not_stop_the_others():
    queue, done = WorkQueue(), []

    def fail() -> None:
        raise ValueError("broken")

    queue.add("bad", fail)
    queue.add("good", lambda: done.append("good"))
    _serve_until_empty(queue, workers=1)
    assert done == ["good"]
