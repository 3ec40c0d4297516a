"""Adaptive batching: concurrent requests scored together in one predict call.

A predict call costs about the same for 1 row as for 32, so under load the batcher
takes every request that queued while the previous batch was scoring (up to a size
limit), and waits up to a short deadline only while more requests are on their way in.
When idle, a lone request is scored at once: batching never costs it latency. Each
request's rows are cut back out of the batch's predictions in order, so every caller
gets exactly its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, TypeGuard, TypeVar, cast

import numpy as np
import pandas as pd

from modelplane.serving.dataplane.columns import Columns
from modelplane.serving.errors import model_failure

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput

Batchable: TypeAlias = Columns | pd.DataFrame | np.ndarray
T = TypeVar("T")


def batchable(data: object) -> TypeGuard[Batchable]:
    """Whether `data` has rows that can be joined with other requests' rows."""
    return isinstance(data, (Columns, pd.DataFrame)) or (isinstance(data, np.ndarray) and data.ndim >= 1)


def rows(data: Batchable) -> int:
    return data.rows if isinstance(data, Columns) else len(data)


def join(parts: list[Batchable]) -> pd.DataFrame | np.ndarray:
    """One model input of all parts' rows, in order (a batch's parts are all of one kind)."""
    if isinstance(parts[0], Columns):
        return Columns.join(cast("list[Columns]", parts))
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate(cast("list[np.ndarray]", parts))


@dataclass
class _Pending:
    data: Batchable
    future: asyncio.Future[PyFuncOutput] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class AdaptiveBatcher:
    def __init__(
        self,
        predict: Callable[[list[Batchable]], PyFuncOutput],  # a batch's parts, all of one kind
        max_size: int,
        max_wait_seconds: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self._predict = predict
        self._max_size = max_size
        self._max_wait = max_wait_seconds
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # One thread: predict calls run one at a time, while the event loop keeps
        # accepting and parsing the requests that will form the next batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._arriving = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def arriving(self) -> _Arrival:
        """Marks a request as on its way (being read and parsed), so a forming batch
        waits for it rather than leaving without it."""
        return _Arrival(self)

    async def alone(self, call: Callable[[], T]) -> T:
        """Runs `call` on the predict thread, outside any batch (for requests that cannot
        share one), so predict calls still never overlap."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def predict(self, data: Batchable) -> PyFuncOutput:
        pending = _Pending(data)
        await self._queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self._max_wait
            while len(batch) < self._max_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if self._arriving == 0 or remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self._on_batch(len(batch))
            await self._score(batch)

    async def _score(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        parts = [pending.data for pending in batch]
        try:
            predictions = await loop.run_in_executor(self._executor, lambda: self._predict(parts))
            results = [predictions] if len(batch) == 1 else _split(predictions, [rows(part) for part in parts])
        except Exception as error:  # noqa: BLE001 - the model's own failure, reported per request
            if len(batch) == 1:
                _settle(batch[0].future, exception=model_failure(error))
                return
            # Score each alone, so only the requests that fail by themselves fail.
            for pending in batch:
                await self._score([pending])
            return
        for pending, result in zip(batch, results, strict=False):
            _settle(pending.future, result=result)


class _Arrival:
    def __init__(self, batcher: AdaptiveBatcher) -> None:
        self._batcher = batcher

    def __enter__(self) -> None:
        self._batcher._arriving += 1

    def __exit__(self, *_: object) -> None:
        self._batcher._arriving -= 1


def _settle(
    future: asyncio.Future[PyFuncOutput], result: PyFuncOutput | None = None, exception: Exception | None = None
) -> None:
    if future.done():  # the caller went away
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


def _split(predictions: PyFuncOutput, sizes: list[int]) -> list[PyFuncOutput]:
    """Cuts batch predictions back into one slice per request, in order."""
    if len(predictions) != sum(sizes):
        raise ValueError(f"the model returned {len(predictions)} predictions for {sum(sizes)} rows")
    slices, start = [], 0
    for size in sizes:
        if isinstance(predictions, (pd.DataFrame, pd.Series)):
            slices.append(predictions.iloc[start : start + size].reset_index(drop=True))
        else:
            slices.append(predictions[start : start + size])
        start += size
    return slices
