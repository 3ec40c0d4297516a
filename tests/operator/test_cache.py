"""The operator's cache of the newest ModelDeployments and workloads seen: newest by
resourceVersion, trimmed to what status decisions read, and read from the API server
only when it has not seen an object (that path runs in every operator test)."""

from __future__ import annotations

import pytest

from modelplane.operator.cache import ObjectCache
from modelplane.operator.kube import Kube


@pytest.fixture
def cache() -> ObjectCache:
    """A cache whose client never connects: every object these tests read was seen."""
    return ObjectCache(Kube(connections=1))


def _deployment(name: str, version: str, replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "cached",
            "resourceVersion": version,
            "labels": {"app": name},
            "managedFields": [{"manager": "modelplane", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"modelplane.io/model-version": "2"}},
                "spec": {"containers": [{"name": "model", "image": "x"}]},
            },
        },
        "status": {"availableReplicas": replicas},
    }


def test_the_newest_version_by_resource_version_is_kept_whatever_order_they_arrive_in(cache: ObjectCache):
    cache.remember("Deployment", _deployment("ordered", "20", replicas=2))
    cache.remember("Deployment", _deployment("ordered", "9", replicas=1))  # older, arriving late
    kept = cache.newest("apps/v1", "Deployment", "cached", "ordered")
    assert kept["spec"]["replicas"] == 2 and kept["metadata"]["resourceVersion"] == "20"
    cache.remember("Deployment", _deployment("ordered", "21", replicas=3))
    assert cache.newest("apps/v1", "Deployment", "cached", "ordered")["spec"]["replicas"] == 3


def test_what_is_kept_leaves_out_managed_fields_and_the_pod_spec_but_not_the_template_labels(cache: ObjectCache):
    cache.remember("Deployment", _deployment("trimmed", "5"))
    kept = cache.newest("apps/v1", "Deployment", "cached", "trimmed")
    assert "managedFields" not in kept["metadata"]
    assert kept["spec"]["template"] == {"metadata": {"labels": {"modelplane.io/model-version": "2"}}}
    assert kept["status"] == {"availableReplicas": 1} and kept["kind"] == "Deployment"


def test_a_cron_job_keeps_its_job_template_labels(cache: ObjectCache):
    cron = {
        "metadata": {"name": "nightly", "namespace": "cached", "resourceVersion": "3"},
        "spec": {
            "schedule": "0 2 * * *",
            "jobTemplate": {
                "spec": {"completions": 2, "template": {"metadata": {"labels": {"v": "1"}}, "spec": {"containers": []}}}
            },
        },
    }
    cache.remember("CronJob", cron)
    kept = cache.newest("batch/v1", "CronJob", "cached", "nightly")
    assert kept["spec"]["jobTemplate"]["spec"] == {"completions": 2, "template": {"metadata": {"labels": {"v": "1"}}}}
    assert kept["spec"]["schedule"] == "0 2 * * *"


def test_objects_without_integer_versions_and_kinds_not_cached_are_not_kept(cache: ObjectCache):
    cache.remember("Deployment", _deployment("opaque", "not-a-number"))
    cache.remember("Service", {**_deployment("service", "4"), "kind": "Service"})
    assert not cache.holds("Deployment", "cached", "opaque")
    assert not cache.holds("Service", "cached", "service")


def test_a_forgotten_object_is_no_longer_kept(cache: ObjectCache):
    cache.remember("Deployment", _deployment("gone", "7"))
    cache.forget("Deployment", "cached", "gone")
    assert not cache.holds("Deployment", "cached", "gone")
