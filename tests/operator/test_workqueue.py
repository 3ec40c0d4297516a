"""The operator's work queue: latest work per key, one worker per key, urgent work first,
failures contained and retried."""

from __future__ import annotations

import asyncio
import itertools
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


def test_failed_work_that_retries_is_tried_again_after_a_delay_doubling_with_each_failure():
    queue, attempts, retried_by_marker = WorkQueue(first_retry_seconds=0.2), [], []

    def flaky() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("the API server went away")

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        serving = asyncio.create_task(queue.serve(workers=2))
        queue.add("record", flaky, retry=True)
        while len(attempts) < 1 or len(queue):
            await asyncio.sleep(0.01)
        # The first failure has been handled and its retry scheduled. A marker due 0.3 s
        # from now runs after a retry due at 0.2 s and before one due at 0.4 s, whatever the
        # load: the event loop runs its timers in the order they are due.
        loop.call_later(0.3, lambda: retried_by_marker.append(len(attempts) > 1 or len(queue) > 0))
        while len(attempts) < 3:
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(asyncio.wait_for(serve(), timeout=10))
    first_delay, second_delay = (later - earlier for earlier, later in itertools.pairwise(attempts))
    assert retried_by_marker == [True], "the first retry came later than 0.3 s after the failure"
    assert first_delay >= 0.19 and second_delay >= 0.39


def test_urgent_work_is_taken_before_work_queued_earlier():
    queue, done = WorkQueue(), []
    for key in "ab":
        queue.add(key, lambda key=key: done.append(key))
    queue.add("c", lambda: done.append("c"), urgent=True)
    queue.add("a", lambda: done.append("a, now urgent"), urgent=True)
    _serve_until_empty(queue, workers=1)
    assert done == ["c", "a, now urgent", "b"]


def test_ordinary_work_keeps_to_its_share_of_the_workers():
    queue, lock, running, most, urgent_done = WorkQueue(), threading.Lock(), [0], [0], []

    def ordinary() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1

    async def serve() -> None:
        serving = asyncio.create_task(queue.serve(3, ordinary_workers=1))
        for key in "abc":
            queue.add(key, ordinary)
        await asyncio.sleep(0.05)
        queue.add("urgent", lambda: urgent_done.append(running[0]), urgent=True)
        while len(queue):
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(serve())
    assert most == [1], "one piece of ordinary work at a time"
    assert urgent_done == [1], "urgent work done beside it, not after it"


def test_ordinary_work_waits_while_urgent_work_is_under_way():
    queue, done = WorkQueue(), []

    async def serve() -> None:
        serving = asyncio.create_task(queue.serve(4, ordinary_workers=2))
        queue.add("workload", lambda: time.sleep(0.3) or done.append("urgent"), urgent=True)
        await asyncio.sleep(0.05)
        queue.add("status", lambda: done.append("ordinary"))  # idle workers, but urgent work under way
        while len(queue):
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(serve())
    assert done == ["urgent", "ordinary"]


def test_a_retry_gives_way_to_newer_work_queued_under_its_key():
    queue, done = WorkQueue(first_retry_seconds=0.3), []

    def fail() -> None:
        done.append("failed")
        raise ConnectionError("the API server went away")

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        serving = asyncio.create_task(queue.serve(workers=1))
        queue.add("record", fail, retry=True)
        while len(queue):
            await asyncio.sleep(0.01)
        # The failure is handled and its retry timer set; this one is due just after it.
        retry_was_due = loop.create_future()
        loop.call_later(0.31, retry_was_due.set_result, None)
        queue.add("record", lambda: time.sleep(0.5) or done.append("newer"))  # under way when the retry is due
        await asyncio.sleep(0.1)
        queue.add("record", lambda: done.append("newest"))  # queued when the retry is due
        await retry_was_due
        while len(queue):
            await asyncio.sleep(0.01)
        serving.cancel()

    asyncio.run(serve())
    assert done == ["failed", "newer", "newest"]
