"""Prometheus metrics of a stream consumer, and the small HTTP server that shows them
beside its health and readiness."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import prometheus_client.metrics
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

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
        self.end_to_end = BatchHistogram(
            "modelplane_stream_end_to_end_seconds",
            "Time from the broker storing an event to its result being written",
            labels,
            END_TO_END_BUCKETS,
            self.registry,
        )
        self.lag = labelled(Gauge, "modelplane_stream_lag", "Events of the consumer group not yet delivered")
        self.ready = False


class BatchHistogram(Collector):
    """A histogram observed a batch of values at a time, exposed as prometheus_client's own:
    one numpy pass per batch instead of a lock and a bucket search per event, which was
    the largest Python cost per event of a stream."""

    def __init__(
        self, name: str, help_: str, labels: dict[str, str], buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.bounds = np.array([*buckets, float("inf")], dtype=float)
        # `le` as prometheus_client writes it ("0.005", "30.0", "+Inf"); it leaves the helper unannotated.
        self.bound_names = [floatToGoString(bound) for bound in self.bounds.tolist()]  # type: ignore[no-untyped-call]
        self.counts = np.zeros(len(self.bounds), dtype=np.int64)
        self.sum = 0.0
        self.created = time.time()
        self._lock = threading.Lock()  # scrapes run beside the consumer
        registry.register(self)

    def observe_many(self, values: Sequence[float] | np.ndarray) -> None:
        observed = np.asarray(values, dtype=float)
        # A bucket counts the values up to and including its bound, as Prometheus' `le` says.
        counts = np.bincount(np.searchsorted(self.bounds, observed, side="left"), minlength=len(self.bounds))
        with self._lock:
            self.counts += counts[: len(self.bounds)]
            self.sum += float(observed.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = np.cumsum(self.counts).tolist(), self.sum
        family = HistogramMetricFamily(self.name, self.help, labels=list(self.labels))
        buckets = list(zip(self.bound_names, cumulative, strict=True))
        family.add_metric(list(self.labels.values()), buckets, sum_value=total)
        # As prometheus_client's own histograms do, unless its created series are turned off
        # (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics()).
        if getattr(prometheus_client.metrics, "_use_created", True):
            family.samples.append(Sample(f"{self.name}_created", self.labels, self.created))
        yield family


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
