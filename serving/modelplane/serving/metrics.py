"""Prometheus metrics of one server, labelled with the model it serves."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, model: str, version: str | None) -> None:
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version or ""}
        self.requests = Counter(
            "modelplane_requests",
            "Requests served, by route and status code",
            ["model", "version", "route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelplane_request_seconds",
            "Time from request to response, by route",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelplane_batch_requests",
            "Requests scored together in one predict call",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.in_flight = Gauge(
            "modelplane_requests_in_flight", "Requests being served now", ["model", "version"], registry=self.registry
        ).labels(**labels)
        self.bodies_decoded_aside = Counter(
            "modelplane_bodies_decoded_aside",
            "Request bodies decoded in the helper process, off the event loop",
            ["model", "version"],
            registry=self.registry,
        ).labels(**labels)
        self.labels = labels
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Counts one answered request and its latency."""
        children = self._children.get((route, status))
        if children is None:
            children = self._children[(route, status)] = (
                self.requests.labels(**self.labels, route=route, code=str(status)),
                self.latency.labels(**self.labels, route=route),
            )
        children[0].inc()
        children[1].observe(seconds)


class MeasuredRequests:
    """ASGI middleware counting each HTTP request by route and status, and timing it.

    A plain ASGI wrapper: Starlette's BaseHTTPMiddleware costs a task group per request,
    more than scoring a small batch."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.in_flight.dec()
            route = scope.get("route")
            metrics.observe(route.path if route else "unmatched", status, time.perf_counter() - started)
