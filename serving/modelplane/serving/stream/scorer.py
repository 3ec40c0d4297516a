"""The consume-score-produce loop, the same for every transport.

Each fetched batch is decoded event by event (an undecodable event is dead-lettered alone),
scored through the data plane in one predict call (a batch that fails, or
holds a schema-invalid event, is scored again event by event, so only the events that
fail by themselves fail), then written to the sink and, only once the sink confirmed it,
acknowledged at the source, while the next batch is fetched and scored. The next batch
is written only after that: a crash at any point re-delivers what was not acknowledged,
at least once, and at most one batch twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd

from modelplane.serving.dataplane.batcher import rows
from modelplane.serving.dataplane.columns import Columns
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.dataplane.plane import DataPlane
from modelplane.serving.errors import InvalidInput, ModelFailed
from modelplane.serving.model import LoadedModel
from modelplane.serving.stream import messages
from modelplane.serving.stream.messages import Event, Outgoing
from modelplane.serving.stream.metrics import StreamMetrics
from modelplane.serving.stream.transports import Sink, Source

log = logging.getLogger("modelplane.stream")
LAG_EVERY_SECONDS = 5.0
RETRY_BACKOFF_SECONDS = 0.5  # doubled at each attempt
Item = TypeVar("Item")


class Decoded(NamedTuple):
    """An event whose value parsed as records (a tuple, as one is made per event)."""

    event: Event
    records: list[dict[str, JSON]]
    ids: list[JSON]
    many: bool


class StreamScorer:
    def __init__(
        self,
        model: LoadedModel,
        source: Source,
        sink: Sink,
        dead_letters: Sink | None,
        metrics: StreamMetrics,
        batch_size: int,
        batch_wait_seconds: float,
        max_attempts: int,
    ) -> None:
        self.source, self.sink, self.dead_letters, self.metrics = source, sink, dead_letters, metrics
        self.batch_size, self.batch_wait, self.max_attempts = batch_size, batch_wait_seconds, max_attempts
        # Every event of a fetched batch is queued before the batcher looks, so no wait is needed.
        self.plane = DataPlane(model, batch_size, 0, on_batch=metrics.batch_size.observe)
        self.headers = {"model": model.name, "model_version": model.version or ""}
        self.binary_column = self.plane.columns.binary_column if self.plane.columns is not None else None
        self._writing: asyncio.Task[None] | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set; the batch in hand is finished and acknowledged first."""
        await self.plane.start()
        lag_at = 0.0
        try:
            while not stopping.is_set():
                events = await self.source.fetch(self.batch_size, self.batch_wait)
                if events:
                    await self.handle(events)
                elif self._writing is not None and self._writing.done():
                    await self._previous_written()  # a write that failed for good stops the consumer while idle too
                if time.monotonic() - lag_at >= LAG_EVERY_SECONDS:
                    lag_at = time.monotonic()
                    await self._measure_lag()
            await self._previous_written()
        finally:
            await self._finish_writing()
            await self.plane.stop()

    async def _finish_writing(self) -> None:
        """On the way out after an error: the batch being written is written and acknowledged
        (or fails) before the transports close, so it is not repeated for nothing."""
        if self._writing is None:
            return
        try:
            await self._previous_written()
        except Exception as error:  # noqa: BLE001 - the error already on its way out is the one to tell
            log.warning(
                "the batch being written as the stream stopped was not acknowledged: %s: %s",
                type(error).__name__,
                error,
            )

    async def _measure_lag(self) -> None:
        try:
            lag = await self.source.lag()
        except Exception as error:  # noqa: BLE001 - a metric is not worth stopping the stream for
            log.warning("could not read the consumer lag: %s: %s", type(error).__name__, error)
            return
        if lag is not None:
            self.metrics.lag.set(lag)

    async def handle(self, events: list[Event]) -> None:
        started = time.perf_counter()
        self.metrics.consumed.inc(len(events))
        decoded, letters = [], []
        for event in events:
            try:
                decoded.append(Decoded(event, *messages.records_of(event, self.binary_column)))
            except InvalidInput as error:
                letters.append(messages.dead_letter(event, f"invalid event: {error}", self.headers))
        scored = await self._score_together(decoded, letters) if decoded else []
        # The previous batch was written and acknowledged while this one was fetched and
        # scored; that must be done before this one is written, so a crash repeats at
        # most one batch.
        await self._previous_written()
        self._writing = asyncio.create_task(self._write_and_acknowledge(events, decoded, scored, letters, started))

    async def _write_and_acknowledge(
        self,
        events: list[Event],
        decoded: list[Decoded],
        scored: list[Outgoing],
        letters: list[Outgoing],
        started: float,
    ) -> None:
        if scored:
            await _patiently(self.sink.send, scored, "write predictions")
            self.metrics.produced.inc(len(scored))
            written = time.time()
            stored = [each.event.written_at for each in decoded if each.event.written_at is not None]
            if stored:
                self.metrics.end_to_end.observe_many(np.maximum(0.0, written - np.array(stored)))
        if letters:
            await self._dead_letter(letters)
        self.metrics.latency.observe(time.perf_counter() - started)
        await _patiently(self.source.ack, events, "acknowledge events")

    async def _previous_written(self) -> None:
        """Waits for the previous batch to be written and acknowledged; raises what stopped it."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _score_together(self, decoded: list[Decoded], letters: list[Outgoing]) -> list[Outgoing]:
        """One input and one predict call for the whole batch; should either fail, each event
        is scored on its own, so only the events that fail by themselves fail."""
        try:
            data = self._input([record for each in decoded for record in each.records])
            values = messages.jsonable(await self.plane.predict(data))
            if len(values) != rows(data):
                raise ModelFailed(f"the model returned {len(values)} predictions for {rows(data)} rows")
        except (InvalidInput, ModelFailed):
            scored: list[Outgoing] = []
            for outcome in await asyncio.gather(*(self._score_alone(each) for each in decoded)):
                (scored if outcome[0] == "scored" else letters).append(outcome[1])
            return scored
        scored, start = [], 0
        for each in decoded:
            end = start + len(each.records)
            scored.append(messages.prediction(each.event, each.ids, each.many, values[start:end], self.headers))
            start = end
        return scored

    def _input(self, records: list[dict[str, JSON]]) -> Columns | pd.DataFrame:
        columns = self.plane.columns
        return columns.from_records(records) if columns is not None else pd.DataFrame(records)

    async def _score_alone(self, decoded: Decoded) -> tuple[str, Outgoing]:
        event = decoded.event
        try:
            data = self._input(decoded.records)
        except InvalidInput as error:
            return "dead", messages.dead_letter(event, f"invalid event: {error}", self.headers)
        failure = None
        while event.attempts < self.max_attempts:
            event.attempts += 1
            try:
                predictions = await self.plane.predict(data)
            except ModelFailed as error:
                failure = error
                continue
            return "scored", messages.prediction(
                event, decoded.ids, decoded.many, messages.jsonable(predictions), self.headers
            )
        why = (
            f"scoring failed {event.attempts} times: {failure}"
            if failure is not None
            else f"delivered {event.attempts} times and never acknowledged: its consumers kept dying"
        )
        return "dead", messages.dead_letter(event, why, self.headers)

    async def _dead_letter(self, letters: list[Outgoing]) -> None:
        self.metrics.dead_lettered.inc(len(letters))
        if self.dead_letters is not None:
            await _patiently(self.dead_letters.send, letters, "write dead letters")
            return
        # With nowhere to put them, the log keeps them: they are never dropped silently.
        for letter in letters:
            log.error("dead letter (no --dead-letter destination set): %s", letter.value.decode())


async def _patiently(
    call: Callable[[list[Item]], Awaitable[None]], items: list[Item], what: str, attempts: int = 4
) -> None:
    """`call(items)`, tried again after a transport error (a repeat writes a batch twice at
    worst, which at-least-once allows); the last error stops the consumer, unacknowledged."""
    for attempt in range(1, attempts + 1):
        try:
            await call(items)
            return
        except Exception as error:  # transports raise their own kinds
            if attempt == attempts:
                raise
            log.warning("could not %s (attempt %d of %d): %s: %s", what, attempt, attempts, type(error).__name__, error)
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
