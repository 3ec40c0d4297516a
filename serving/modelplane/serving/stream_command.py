"""`modelplane stream`: load the model, connect the transports, consume until SIGTERM.

SIGTERM (or Ctrl-C) drains: no new fetch, the batch in hand is scored, written and
acknowledged, the transports are closed (Kafka commits, producers flush), and the process
exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from modelplane.serving.settings import StreamSettings
from modelplane.serving.startup import run, stop

if TYPE_CHECKING:
    from modelplane.serving.model import LoadedModel

log = logging.getLogger("modelplane.stream")


def main(overrides: dict[str, Any]) -> int:
    return run(StreamSettings, overrides, stream)


def stream(settings: StreamSettings, model: LoadedModel) -> int:
    try:
        asyncio.run(consume(model, settings))
    except Exception as error:  # a transport that failed for good: say which, and exit
        # Nothing unacknowledged is lost: a restarted consumer is delivered it again.
        log.debug("the stream stopped", exc_info=True)
        return stop(f"the stream stopped: {type(error).__name__}: {error or 'no detail'}")
    return 0


async def consume(model: LoadedModel, settings: StreamSettings) -> None:
    from modelplane.serving.stream import transports
    from modelplane.serving.stream.metrics import StreamMetrics, serve_health
    from modelplane.serving.stream.scorer import StreamScorer

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    metrics = StreamMetrics(model.name, model.version)
    health = await serve_health(metrics, settings.metrics_host, settings.metrics_port)
    source = transports.source(settings.source, settings.consumer_group, settings.consumer_name)
    sink = transports.sink(settings.sink)
    dead_letters = transports.sink(settings.dead_letter) if settings.dead_letter else None
    opened: list[transports.Sink | transports.Source] = [sink, *([dead_letters] if dead_letters else []), source]
    try:
        for transport in opened:
            await transport.start()
        metrics.ready = True
        log.info("consuming %s with %s, writing to %s", settings.source, model.uri, settings.sink)
        scorer = StreamScorer(
            model,
            source,
            sink,
            dead_letters,
            metrics,
            settings.batch_size,
            settings.batch_wait_ms / 1000,
            settings.max_attempts,
        )
        await scorer.run(stopping)
        log.info("drained: stopping")
    finally:
        metrics.ready = False
        for transport in reversed(opened):
            await transport.close()
        health.close()
