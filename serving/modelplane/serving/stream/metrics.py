"""Prometheus metrics of a stream consumer, and the small HTTP server that shows them
beside its health and readiness."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelplane.serving.buckets import BATCH_BUCKETS, LATENCY_BUCKETS

# A backlog being worked off takes minutes, not milliseconds.
END_TO_END_BUCKETS = (*LATENCY_BUCKETS, 30, 60, 300, 900, 3600)
Metric = TypeVar("Metric", Counter, Gauge, Histogram)


class StreamMetrics:
    def __init__(self, model: str, version: str | None) -> None:
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version or ""}

        def labelled(kind: type[Metric], name: str, help_: str, **extra: Any) -> Metric:
            return kind(name, help_, list(labels), registry=self.registry, **extra).labels(**labels)

        self.consumed = labelled(Counter, "modelplane_stream_consumed", "Events read from the source")
        self.produced = labelled(Counter, "modelplane_stream_produced", "Predictions written to the sink")
        self.dead_lettered = labelled(
            Counter,
            "modelplane_stream_dead_lettered",
            "Events that could not be scored, sent to the dead-letter destination",
        )
        self.batch_size = labelled(
            Histogram, "modelplane_batch_requests", "Events scored together in one predict call", buckets=BATCH_BUCKETS
        )
        self.latency = labelled(
            Histogram,
            "modelplane_stream_batch_seconds",
            "Time from fetching a batch to writing its predictions",
            buckets=LATENCY_BUCKETS,
        )
        self.end_to_end = labelled(
            Histogram,
            "modelplane_stream_end_to_end_seconds",
            "Time from the broker storing an event to its result being written",
            buckets=END_TO_END_BUCKETS,
        )
        self.lag = labelled(Gauge, "modelplane_stream_lag", "Events of the consumer group not yet delivered")
        self.ready = False


async def serve_health(metrics: StreamMetrics, host: str, port: int) -> asyncio.Server:
    """/metrics, /healthz (alive) and /readyz (connected and consuming). Probes and scrapers
    send one GET per connection; a server this small leaves SIGTERM to the consumer."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].split(b"?")[0] if request.count(b" ") >= 2 else b""
            if path == b"/metrics":
                status, body, kind = "200 OK", generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif path == b"/healthz" or (path == b"/readyz" and metrics.ready):
                status, body, kind = "200 OK", b"ok", "text/plain"
            elif path == b"/readyz":
                status, body, kind = "503 Service Unavailable", b"not ready", "text/plain"
            else:
                status, body, kind = "404 Not Found", b"not found", "text/plain"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)
