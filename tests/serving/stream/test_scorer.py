"""The consume-score-produce loop over a source and sink in memory: a batch is scored
while the one before it is still being written, yet written only once that one is
acknowledged; a write that fails for good stops the consumer with nothing acknowledged;
a consumer stopped by an error finishes the write in flight first."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema

from modelplane.serving.model import LoadedModel
from modelplane.serving.model_file import Specs
from modelplane.serving.stream import scorer
from modelplane.serving.stream.messages import Event, Outgoing
from modelplane.serving.stream.metrics import StreamMetrics
from modelplane.serving.stream.scorer import StreamScorer

BATCH = 4
OWED = 60.0  # how long a test waits for what it is owed; reached only when the loop is broken


class Doubler:
    """Doubles column x; records each batch it scored."""

    def __init__(self) -> None:
        self.scored: list[list[float]] = []

    def predict(self, frame: pd.DataFrame, params: dict | None = None) -> pd.Series:
        self.scored.append(frame["x"].tolist())
        return frame["x"] * 2


class MemorySource:
    """Batches of BATCH events with x = their offset; records what it was asked to ack."""

    def __init__(self, batches: int) -> None:
        self.pending = [
            [
                Event(json.dumps({"id": n, "x": n}).encode(), None, {"offset": n})
                for n in range(b * BATCH, (b + 1) * BATCH)
            ]
            for b in range(batches)
        ]
        self.acked: list[list[int]] = []
        self.drained = asyncio.Event()

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        if not self.pending:
            self.drained.set()
            await asyncio.sleep(0.01)
            return []
        return self.pending.pop(0)

    async def ack(self, events: list[Event]) -> None:
        self.acked.append([event.origin["offset"] for event in events])


class FailingAfterFirstFetch(MemorySource):
    """One batch, then a fetch that fails as a broker gone away does."""

    def __init__(self) -> None:
        super().__init__(batches=1)
        self.failed = asyncio.Event()

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        if self.pending:
            return self.pending.pop(0)
        self.failed.set()
        raise ConnectionError("the source went away")


class HeldSink:
    """Records each write; the first is held until the test lets it go, or every one fails."""

    def __init__(self, failing: bool = False) -> None:
        self.written: list[list[int]] = []
        self.held, self.release = asyncio.Event(), asyncio.Event()
        self.failing = failing

    async def send(self, messages: list[Outgoing]) -> None:
        if self.failing:
            raise ConnectionError("the broker went away")
        if not self.written and not self.release.is_set():
            self.held.set()
            await self.release.wait()
        self.written.append([json.loads(message.value)["id"] for message in messages])


def _scorer(source: MemorySource, sink: HeldSink, model: Doubler) -> StreamScorer:
    loaded = LoadedModel(
        "models:/doubler/1",
        "doubler",
        "1",
        path=None,  # type: ignore[arg-type]
        make_pyfunc=lambda: model,  # type: ignore[arg-type, return-value]
        inputs=Specs(Schema([ColSpec("double", "x")]).to_json()),
    )
    return StreamScorer(loaded, source, sink, None, StreamMetrics("doubler", "1"), BATCH, 0.0, 3)  # type: ignore[arg-type]


async def _until(condition, what: str) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(poll(), OWED)
    except TimeoutError:
        pytest.fail(f"never saw {what}")


def test_the_next_batch_is_scored_while_one_is_written_and_written_only_after_its_ack():
    async def test() -> None:
        model, source, sink = Doubler(), MemorySource(batches=3), HeldSink()
        stopping = asyncio.Event()
        running = asyncio.create_task(_scorer(source, sink, model).run(stopping))

        await _until(sink.held.is_set, "the first batch being written")
        await _until(lambda: len(model.scored) == 2, "the second batch scored while the first is written")
        assert sink.written == [] and source.acked == []

        sink.release.set()
        await source.drained.wait()
        stopping.set()
        await asyncio.wait_for(running, OWED)
        first, second, third = ([n + b * BATCH for n in range(BATCH)] for b in range(3))
        assert sink.written == [first, second, third]
        assert source.acked == [first, second, third]
        assert model.scored == [[float(n) for n in batch] for batch in (first, second, third)]

    asyncio.run(asyncio.wait_for(test(), OWED))


def test_a_write_that_fails_for_good_stops_the_consumer_with_nothing_acknowledged(monkeypatch):
    monkeypatch.setattr(scorer, "RETRY_BACKOFF_SECONDS", 0.0)

    async def test() -> None:
        # One batch, then an idle source: the failure must surface without another event.
        source = MemorySource(batches=1)
        running = asyncio.create_task(_scorer(source, HeldSink(failing=True), Doubler()).run(asyncio.Event()))

        with pytest.raises(ConnectionError, match="the broker went away"):
            await asyncio.wait_for(running, OWED)
        assert source.drained.is_set() and source.acked == []

    asyncio.run(asyncio.wait_for(test(), OWED))


def test_a_consumer_stopped_by_an_error_finishes_the_write_in_flight_first():
    async def test() -> None:
        source, sink = FailingAfterFirstFetch(), HeldSink()
        running = asyncio.create_task(_scorer(source, sink, Doubler()).run(asyncio.Event()))
        # What was written and acknowledged when the consumer stopped, not some time after.
        at_stop: list[tuple[list, list]] = []
        running.add_done_callback(lambda _: at_stop.append((list(sink.written), list(source.acked))))

        await _until(sink.held.is_set, "the batch being written")
        await _until(source.failed.is_set, "the fetch failing while it is written")
        assert sink.written == [] and source.acked == []
        sink.release.set()

        with pytest.raises(ConnectionError, match="the source went away"):
            await asyncio.wait_for(running, OWED)
        batch = list(range(BATCH))
        assert at_stop == [([batch], [batch])]

    asyncio.run(asyncio.wait_for(test(), OWED))
