"""The operator's client of the API server, for its own reads and writes."""

from __future__ import annotations

import threading

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, ForbiddenError, NotFoundError, ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from modelplane.operator.spec import API_VERSION, KIND

__all__ = ["ConflictError", "ForbiddenError", "Kube", "NotFoundError"]


class Kube:
    """One connection pool to the API server, with the discovery of its kinds. Safe to
    share between threads."""

    def __init__(self, connections: int, kubeconfig: str | None = None) -> None:
        """`connections`: how many are kept open for reuse, one for each thread that may
        send a request at once, as each new one costs a TLS handshake. In a pod, its
        ServiceAccount; elsewhere `kubeconfig`, or KUBECONFIG's."""
        self._connections, self._kubeconfig = connections, kubeconfig
        self._client: DynamicClient | None = None
        self._lock = threading.Lock()

    @property
    def connections(self) -> int:
        return self._connections

    def _dynamic(self) -> DynamicClient:
        # Connected on first use, not when made: `modelplane operator` makes its client
        # before it knows whether its settings let it start.
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> DynamicClient:
        configuration = client.Configuration()
        # The kubernetes package declares itself typed (py.typed) but leaves these functions
        # unannotated, so each call is one mypy cannot check.
        try:
            if self._kubeconfig is not None:
                raise ConfigException("a kubeconfig was named")
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=self._kubeconfig, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = self._connections
        dynamic = DynamicClient(client.ApiClient(configuration))  # type: ignore[no-untyped-call]
        # Discovery is cached in a file named after the API server's address: what another API
        # server at that address, or this one before an add-on came or went, served must not count.
        dynamic.resources.invalidate_cache()
        return dynamic

    @property
    def api_client(self) -> client.ApiClient:
        api: client.ApiClient = self._dynamic().client
        return api

    def resource(self, api_version: str = API_VERSION, kind: str = KIND) -> Resource:
        found: Resource = self._dynamic().resources.get(api_version=api_version, kind=kind)
        return found

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves `kind` (an add-on's CRD is installed)."""
        try:
            self.resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True
