"""The adaptive batcher on its own, over a plain predict function: which requests share a
predict call, and what each caller gets back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
import pytest

from modelplane.serving.dataplane.batcher import AdaptiveBatcher, join
from modelplane.serving.errors import InputRejected, ModelFailed

# Longer than any test runs: a batch that waited for its window would never be answered.
HOUR = 3600.0
# How long a test waits for an answer it is owed; reached only when the batcher is broken.
OWED = 60.0


class Model:
    """Doubles its input; refuses a negative value as a model refuses bad input (ValueError),
    and fails outright on 13. Each call can be held until the test lets it go, so requests
    queue behind it."""

    def __init__(self):
        self.calls: list[np.ndarray] = []
        self.started = threading.Semaphore(0)
        self._hold = threading.Event()
        self._hold.set()

    def hold(self) -> None:
        self._hold.clear()

    def release(self) -> None:
        self._hold.set()

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(rows.copy())
        self.started.release()
        self._hold.wait(OWED)
        if (rows < 0).any():
            raise ValueError("negative values cannot be scored")
        if (rows == 13).any():
            raise RuntimeError("the model's lookup table has no entry for 13")
        return rows * 2


def _run(test) -> None:
    asyncio.run(asyncio.wait_for(test(), OWED))


async def _first_call_in_flight(model: Model) -> None:
    """Waits until the model is predicting (on its own thread)."""
    assert await asyncio.get_running_loop().run_in_executor(None, model.started.acquire, True, OWED)


def _batcher(model: Model, max_size: int = 32, wait: float = HOUR) -> tuple[AdaptiveBatcher, list[int]]:
    sizes: list[int] = []
    return AdaptiveBatcher(lambda parts: model.predict(join(parts)), max_size, wait, on_batch=sizes.append), sizes


def test_a_lone_request_is_scored_at_once_without_waiting_for_the_window():
    async def test():
        model = Model()
        batcher, sizes = _batcher(model, wait=HOUR)
        batcher.start()
        try:
            answer = await batcher.predict(np.array([1.0, 2.0]))
        finally:
            await batcher.stop()
        assert answer.tolist() == [2.0, 4.0]
        assert sizes == [1]

    _run(test)


def test_requests_queued_while_the_model_is_busy_share_the_next_predict_call():
    async def test():
        model = Model()
        batcher, sizes = _batcher(model)
        batcher.start()
        model.hold()
        try:
            first = asyncio.create_task(batcher.predict(np.array([1.0])))
            await _first_call_in_flight(model)
            queued = [asyncio.create_task(batcher.predict(np.array(values))) for values in ([2.0, 3.0], [4.0], [5.0])]
            await asyncio.sleep(0)  # let them reach the queue before the model frees up
            model.release()
            answers = [(await task).tolist() for task in (first, *queued)]
        finally:
            await batcher.stop()
        assert sizes == [1, 3]
        assert [call.tolist() for call in model.calls] == [[1.0], [2.0, 3.0, 4.0, 5.0]]
        assert answers == [[2.0], [4.0, 6.0], [8.0], [10.0]]

    _run(test)


def test_a_batch_holds_at_most_max_size_requests():
    async def test():
        model = Model()
        batcher, sizes = _batcher(model, max_size=2)
        batcher.start()
        model.hold()
        try:
            first = asyncio.create_task(batcher.predict(np.array([0.0])))
            await _first_call_in_flight(model)
            queued = [asyncio.create_task(batcher.predict(np.array([float(n)]))) for n in range(1, 6)]
            await asyncio.sleep(0)
            model.release()
            answers = [(await task).tolist() for task in (first, *queued)]
        finally:
            await batcher.stop()
        assert sizes == [1, 2, 2, 1]
        assert answers == [[2.0 * n] for n in range(6)]

    _run(test)


def test_a_forming_batch_waits_for_a_request_still_arriving():
    async def test():
        model = Model()
        batcher, sizes = _batcher(model, wait=HOUR)
        batcher.start()
        try:
            with batcher.arriving():
                early = asyncio.create_task(batcher.predict(np.array([1.0])))
                for _ in range(20):  # turns of the event loop in which a batch that did not wait would leave
                    await asyncio.sleep(0)
                assert sizes == []
                late = asyncio.create_task(batcher.predict(np.array([2.0])))
                await asyncio.sleep(0)
            answers = [(await early).tolist(), (await late).tolist()]
        finally:
            await batcher.stop()
        # Once nobody is arriving, the batch leaves at once, not after its hour-long window.
        assert sizes == [2]
        assert [call.tolist() for call in model.calls] == [[1.0, 2.0]]
        assert answers == [[2.0], [4.0]]

    _run(test)


@pytest.mark.parametrize(
    ("bad", "error", "status", "words"),
    [
        (-1.0, InputRejected, 422, "the model cannot score this input: negative values cannot be scored"),
        (13.0, ModelFailed, 500, "the model failed to predict: the model's lookup table has no entry for 13"),
    ],
)
def test_a_request_that_fails_its_batch_is_rescored_alone_and_fails_by_itself(bad, error, status, words):
    async def test():
        model = Model()
        batcher, sizes = _batcher(model)
        batcher.start()
        model.hold()
        try:
            first = asyncio.create_task(batcher.predict(np.array([0.0])))
            await _first_call_in_flight(model)
            mates = [asyncio.create_task(batcher.predict(np.array([value]))) for value in (1.0, bad, 2.0)]
            await asyncio.sleep(0)
            model.release()
            await first
            outcomes = await asyncio.gather(*mates, return_exceptions=True)
        finally:
            await batcher.stop()
        assert sizes == [1, 3], "the failing request did not share a batch"
        assert [call.tolist() for call in model.calls] == [[0.0], [1.0, bad, 2.0], [1.0], [bad], [2.0]]
        assert outcomes[0].tolist() == [2.0] and outcomes[2].tolist() == [4.0]
        assert type(outcomes[1]) is error
        assert outcomes[1].status_code == status and outcomes[1].message == words

    _run(test)


def test_each_caller_gets_its_own_rows_of_a_data_frame_answer():
    async def test():
        sizes: list[int] = []

        def predict(parts: list[pd.DataFrame]) -> pd.DataFrame:
            frame = join(parts)
            return frame.assign(doubled=frame.x * 2)

        batcher = AdaptiveBatcher(predict, 32, HOUR, on_batch=sizes.append)
        batcher.start()
        try:
            with batcher.arriving():
                parts = [pd.DataFrame({"x": values}) for values in ([1, 2], [3], [4, 5, 6])]
                tasks = [asyncio.create_task(batcher.predict(part)) for part in parts]
                await asyncio.sleep(0)
            answers = [await task for task in tasks]
        finally:
            await batcher.stop()
        assert sizes == [3]
        for part, answer in zip(parts, answers, strict=True):
            # Its own rows, numbered from 0 as in the request.
            pd.testing.assert_frame_equal(answer, part.assign(doubled=part.x * 2))

    _run(test)


def test_a_caller_that_went_away_does_not_stop_its_batch_mates_answers():
    async def test():
        model = Model()
        batcher, sizes = _batcher(model)
        batcher.start()
        model.hold()
        try:
            first = asyncio.create_task(batcher.predict(np.array([0.0])))
            await _first_call_in_flight(model)
            gone, staying = (asyncio.create_task(batcher.predict(np.array([value]))) for value in (1.0, 2.0))
            await asyncio.sleep(0)
            gone.cancel()
            model.release()
            answers = [(await first).tolist(), (await staying).tolist()]
            after = (await batcher.predict(np.array([3.0]))).tolist()
        finally:
            await batcher.stop()
        assert gone.cancelled()
        assert answers == [[0.0], [4.0]]
        assert after == [6.0], "the batcher stopped after settling a request nobody waited for"
        assert sizes == [1, 2, 1]

    _run(test)
