"""The consume-score-produce loop, the same for every transport.

Each fetched batch is decoded event by event (an undecodable or schema-invalid event is
dead-lettered alone), scored through the serving runtime's batcher (one predict call for
the batch; a failing batch is scored again event by event, so only the events that fail by
themselves fail), written to the sink, and only once the sink confirmed it acknowledged at
the source. A crash at any point re-delivers what was not acknowledged: at least once, and
at most one batch twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pandas as pd

from modelplane.serving.batching import AdaptiveBatcher
from modelplane.serving.errors import InvalidInput, ModelFailed
from modelplane.serving.model import LoadedModel
from modelplane.serving.protocols.columns import ColumnSchema
from modelplane.serving.stream import messages
from modelplane.serving.stream.messages import Event, Outgoing
from modelplane.serving.stream.metrics import StreamMetrics
from modelplane.serving.stream.transports import Sink, Source

log = logging.getLogger("modelplane.stream")
LAG_EVERY_SECONDS = 5.0


class StreamScorer:
    def __init__(self, model: LoadedModel, source: Source, sink: Sink, dead_letters: Sink | None,
                 metrics: StreamMetrics, batch_size: int, batch_wait_seconds: float, max_attempts: int):
        self.source, self.sink, self.dead_letters, self.metrics = source, sink, dead_letters, metrics
        self.batch_size, self.batch_wait, self.max_attempts = batch_size, batch_wait_seconds, max_attempts
        self.columns = ColumnSchema.of(model.input_schema)
        # Every event of a fetched batch is queued before the batcher looks, so no wait is needed.
        self.batcher = AdaptiveBatcher(model.pyfunc.predict, batch_size, 0, on_batch=metrics.batch_size.observe)
        self.headers = {"model": model.name, "model_version": model.version or ""}

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set; the batch in hand is finished and acknowledged first."""
        self.batcher.start()
        lag_at = 0.0
        try:
            while not stopping.is_set():
                events = await self.source.fetch(self.batch_size, self.batch_wait)
                if events:
                    await self.handle(events)
                if time.monotonic() - lag_at >= LAG_EVERY_SECONDS:
                    lag_at = time.monotonic()
                    if (lag := await self.source.lag()) is not None:
                        self.metrics.lag.set(lag)
        finally:
            await self.batcher.stop()

    async def handle(self, events: list[Event]) -> None:
        started = time.perf_counter()
        self.metrics.consumed.inc(len(events))
        outcomes = await asyncio.gather(*(self._score(event) for event in events))
        scored = [outcome for outcome in outcomes if outcome[0] == "scored"]
        letters = [outcome for outcome in outcomes if outcome[0] == "dead"]
        if scored:
            await self.sink.send([outgoing for _, outgoing in scored])
            self.metrics.produced.inc(len(scored))
        if letters:
            await self._dead_letter([outgoing for _, outgoing in letters])
        await self.source.ack(events)
        self.metrics.latency.observe(time.perf_counter() - started)

    async def _score(self, event: Event) -> tuple[str, Outgoing]:
        try:
            records, ids, many = messages.records_of(event)
            data = self.columns.from_records(records) if self.columns else pd.DataFrame(records)
        except InvalidInput as error:
            return "dead", messages.dead_letter(event, f"invalid event: {error}", self.headers)
        failure = None
        while event.attempts < self.max_attempts:
            event.attempts += 1
            try:
                predictions = await self.batcher.predict(data)
            except ModelFailed as error:
                failure = error
                continue
            return "scored", messages.prediction(event, ids, many, predictions, self.headers)
        why = (f"scoring failed {event.attempts} times: {failure}" if failure is not None
               else f"delivered {event.attempts} times and never acknowledged: its consumers kept dying")
        return "dead", messages.dead_letter(event, why, self.headers)

    async def _dead_letter(self, letters: list[Outgoing]) -> None:
        self.metrics.dead_lettered.inc(len(letters))
        if self.dead_letters is not None:
            await self.dead_letters.send(letters)
            return
        # With nowhere to put them, the log keeps them: they are never dropped silently.
        for letter in letters:
            log.error("dead letter (no --dead-letter destination set): %s", letter.value.decode())
