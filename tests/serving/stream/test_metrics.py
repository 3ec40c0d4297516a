"""A histogram observed a batch at a time reads, to a scraper, exactly as prometheus_client's
own histogram observed one value at a time."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelplane.serving.stream.metrics import END_TO_END_BUCKETS, BatchHistogram


def test_a_batch_histogram_exposes_what_a_histogram_observing_each_value_does():
    # Values on bucket bounds (counted in them, as `le` says), between them and past the last.
    values = [0.0, 0.005, 0.0051, 1.0, 30.0, 3600.0, 3600.5, 1e9, 0.25, 0.25]
    each_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    each = Histogram(
        "e2e_seconds", "help", ["model", "version"], buckets=END_TO_END_BUCKETS, registry=each_registry
    ).labels(model="m", version="1")
    batched = BatchHistogram("e2e_seconds", "help", {"model": "m", "version": "1"}, END_TO_END_BUCKETS, batch_registry)

    for value in values:
        each.observe(value)
    batched.observe_many(values[:4])
    batched.observe_many(values[4:])

    def without_creation_time(registry: CollectorRegistry) -> str:
        return re.sub(r"(e2e_seconds_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())

    assert without_creation_time(batch_registry) == without_creation_time(each_registry)
    assert 'e2e_seconds_bucket{le="0.005",model="m",version="1"} 2.0' in without_creation_time(batch_registry)
