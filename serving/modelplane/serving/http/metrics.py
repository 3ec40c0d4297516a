"""Prometheus metrics of one HTTP server, labelled with the model it serves; every request
is counted once, by the scoring routes' app (routes.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelplane.serving.buckets import BATCH_BUCKETS, LATENCY_BUCKETS


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
