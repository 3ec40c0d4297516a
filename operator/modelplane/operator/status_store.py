"""The one writer of a ModelDeployment's status: a read-modify-write of the /status
subresource guarded by resourceVersion, written only on change, so two writers (the
reconciler and a child's event) never overwrite each other's view. It reads the newest
ModelDeployment seen (`cache`), and the API server after a conflict."""

from __future__ import annotations

from collections.abc import Callable

from modelplane.operator.cache import ObjectCache
from modelplane.operator.kube import ConflictError, Kube, NotFoundError
from modelplane.operator.manifest import ModelDeployment, parse_manifest
from modelplane.operator.objects import Object
from modelplane.operator.spec import API_VERSION, KIND
from modelplane.operator.status import ModelDeploymentStatus

# mutate(status, deployment) changes `status`, the deployment's own, in place.
Mutation = Callable[[ModelDeploymentStatus, ModelDeployment], None]
# (before, after) a write; the same twice when nothing changed.
Change = tuple[ModelDeploymentStatus, ModelDeploymentStatus]


class StatusStore:
    def __init__(self, kube: Kube, cache: ObjectCache) -> None:
        self._kube, self._cache = kube, cache

    def update(
        self, namespace: str, name: str, mutate: Mutation, body: Object | None = None, attempts: int = 5
    ) -> Change | None:
        """Lets `mutate` change the ModelDeployment's status and writes it only if it
        changed. `body`, when the caller has a recent one, saves a read; a conflicting
        write in between makes it re-read and start over. Returns (before, after), or None
        if the object is gone."""
        fresh = False
        for _ in range(attempts):
            if body is None:
                body = self._cache.newest(API_VERSION, KIND, namespace, name, fresh=fresh)
                if body is None:
                    return None
            written = body.get("status") or {}
            before, after = ModelDeploymentStatus.of(body), ModelDeploymentStatus.of(body)
            mutate(after, parse_manifest(body, check_rules=False))
            changed = after.to_object()
            if changed == before.to_object():
                return before, after
            # A merge patch: fields `mutate` cleared are sent as null to delete them.
            patch = {key: changed.get(key) for key in written.keys() | changed.keys()}
            try:
                answer = self._kube.resource().status.patch(
                    name=name,
                    namespace=namespace,
                    body={"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": patch},
                    content_type="application/merge-patch+json",
                )
            except ConflictError:
                body, fresh = None, True
                continue
            except NotFoundError:
                return None
            self._cache.remember(KIND, answer.to_dict())
            return before, after
        raise RuntimeError(
            f"could not write the status of {namespace}/{name}: it kept changing under {attempts} attempts"
        )
