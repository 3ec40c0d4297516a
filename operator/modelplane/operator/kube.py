"""One Kubernetes client for the operator's own reads and writes."""

from __future__ import annotations

from functools import cache

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, ForbiddenError, NotFoundError
from kubernetes.dynamic.resource import Resource

from modelplane.operator.spec import API_VERSION, KIND

__all__ = ["ConflictError", "ForbiddenError", "NotFoundError", "dynamic_client", "resource"]

# Connections to the API server kept open for reuse: one for each thread that may send a
# request at once (the work queue's, the Events poster's), as each new one is a TLS handshake.
CONNECTIONS = 72


@cache
def dynamic_client() -> DynamicClient:
    """In a pod, its ServiceAccount; elsewhere, the kubeconfig (KUBECONFIG)."""
    # The kubernetes package declares itself typed (py.typed) but leaves these functions
    # unannotated, so each call is one mypy cannot check.
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONNECTIONS
    dynamic = DynamicClient(client.ApiClient(configuration))  # type: ignore[no-untyped-call]
    # Discovery is cached in a file named after the API server's address: what another API
    # server at that address, or this one before an add-on came or went, served must not count.
    dynamic.resources.invalidate_cache()
    return dynamic


def resource(api_version: str = API_VERSION, kind: str = KIND) -> Resource:
    found: Resource = dynamic_client().resources.get(api_version=api_version, kind=kind)
    return found
