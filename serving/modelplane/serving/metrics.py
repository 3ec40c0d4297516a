"""Prometheus metrics of one server, labelled with the model it serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, model: str, version: str | None):
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version or ""}
        self.requests = Counter("modelplane_requests", "Requests served, by route and status code",
                                ["model", "version", "route", "code"], registry=self.registry)
        self.latency = Histogram("modelplane_request_seconds", "Time from request to response, by route",
                                 ["model", "version", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("modelplane_batch_requests", "Requests scored together in one predict call",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=self.registry).labels(**labels)
        self.in_flight = Gauge("modelplane_requests_in_flight", "Requests being served now",
                               ["model", "version"], registry=self.registry).labels(**labels)
        self.labels = labels
