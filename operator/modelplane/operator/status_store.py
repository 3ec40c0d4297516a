"""The one writer of a ModelDeployment's status: a read-modify-write of the /status
subresource guarded by resourceVersion, written only on change, so two writers (the
reconciler and a child's event) never overwrite each other's view. It reads the newest
ModelDeployment seen (`cache`), and the API server after a conflict."""

from __future__ import annotations

import copy
from collections.abc import Callable

from modelplane.operator import cache
from modelplane.operator.kube import ConflictError, NotFoundError, resource
from modelplane.operator.objects import Object
from modelplane.operator.spec import API_VERSION, KIND


def update_status(
    namespace: str, name: str, mutate: Callable[[Object, Object], None], body: Object | None = None, attempts: int = 5
) -> tuple[Object, Object] | None:
    """Lets `mutate(status, body)` change a copy of the ModelDeployment's status and writes
    it only if it changed. `body`, when the caller has a recent one, saves a read; a
    conflicting write in between makes it re-read and start over. Returns (before, after),
    or None if the object is gone."""
    deployments = resource()
    fresh = False
    for _ in range(attempts):
        if body is None:
            body = cache.newest(API_VERSION, KIND, namespace, name, fresh=fresh)
            if body is None:
                return None
        before = body.get("status") or {}
        after = copy.deepcopy(before)
        mutate(after, body)
        if after == before:
            return before, after
        # A merge patch: keys dropped by `mutate` are sent as null to delete them.
        patch = {key: after.get(key) for key in before.keys() | after.keys()}
        try:
            written = deployments.status.patch(
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
        cache.remember(KIND, written.to_dict())
        return before, after
    raise RuntimeError(f"could not write the status of {namespace}/{name}: it kept changing under {attempts} attempts")
