"""Making the cluster hold exactly the rendered children: create or update each, prune
the ones the current mode no longer needs.

Only objects this ModelDeployment controls are written: one of the same name that it does
not (a Service someone made, a child of an earlier ModelDeployment of that name) is left
alone and reported as a ChildConflict, as is its being collected with the ModelDeployment."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from urllib3 import BaseHTTPResponse

from modelplane.operator.kube import ConflictError, Kube, NotFoundError
from modelplane.operator.objects import Object
from modelplane.operator.render.common import (
    CHILD_KINDS,
    DEPLOYMENT_LABEL,
    SCALED_OBJECT,
    content_hash,
)

FIELD_MANAGER = "modelplane"
SPEC_HASH_ANNOTATION = "modelplane.io/spec-hash"


class ChildConflict(Exception):
    """An object of a child's kind and name exists and is not controlled by the
    ModelDeployment: nothing was written to it."""

    def __init__(self, kind: str, name: str):
        super().__init__(
            f"{kind}/{name} already exists and is not controlled by this ModelDeployment: it is left "
            "alone; delete or rename it, or give this ModelDeployment another name"
        )
        self.kind, self.name = kind, name


def apply_children(kube: Kube, children: list[Object], compare: bool = True) -> int:
    """Applies each child whose rendered content changed; returns how many were written.
    Without `compare`, for a resource just created, each is created unread (and applied
    as usual where it exists after all: the same pass, tried again).

    The comparison is against a hash of the rendered object stored on it, not against the
    live object, whose server defaults would make every pass look like a change. Raises
    ChildConflict, having written nothing more, at a child it does not control."""
    written = 0
    for child in map(copy.deepcopy, children):
        desired_hash = content_hash(child)
        child["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = desired_hash
        live = read_child(kube, child) if compare else None
        if live is None:
            if _create(kube, child):
                written += 1
                continue
            if (live := read_child(kube, child)) is None:
                raise RuntimeError(f"{child['kind']}/{child['metadata']['name']} was deleted as it was created")
        if not _controlled(live, child):
            raise ChildConflict(child["kind"], child["metadata"]["name"])
        if (live["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION) == desired_hash:
            continue
        _take_over_created_fields(kube, child, live)
        _apply(kube, child)
        written += 1
    return written


def _controlled(live: Object, child: Object) -> bool:
    """Whether the live object's controller is the owner the rendered child names."""
    owners = {ref["uid"] for ref in child["metadata"].get("ownerReferences") or () if ref.get("controller")}
    return any(
        ref.get("controller") and ref.get("uid") in owners for ref in live["metadata"].get("ownerReferences") or ()
    )


def _create(kube: Kube, child: Object) -> bool:
    """Creates the child; False if it exists. A create costs the API server about a third
    less than a server-side apply (measured on the test bed), which under a burst of new
    resources is what each waits for; its fields are taken over by the first apply."""
    try:
        _read_to_end(
            kube.resource(child["apiVersion"], child["kind"]).create(
                body=child, namespace=child["metadata"]["namespace"], field_manager=FIELD_MANAGER, serialize=False
            )
        )
    except ConflictError:
        return False
    return True


def _apply(kube: Kube, child: Object) -> None:
    # Server-side apply: fields this manager stops setting are removed, and fields others
    # own (the autoscaler's replica count) are left to them.
    _read_to_end(
        kube.resource(child["apiVersion"], child["kind"]).server_side_apply(
            body=child,
            namespace=child["metadata"]["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            serialize=False,
        )
    )


def _take_over_created_fields(kube: Kube, child: Object, live: Object) -> None:
    """Makes the fields this manager set by creating the child its applied ones, as
    kubectl does when it moves an object to server-side apply: else a created field the
    next apply leaves out would stay, owned by the create. The write is guarded by the
    resourceVersion read."""
    entries = live["metadata"].get("managedFields") or []
    created = [entry for entry in entries if _is_own(entry, "Update")]
    if not created:
        return
    applied = next((entry for entry in entries if _is_own(entry, "Apply")), None)
    fields = functools.reduce(
        _union, (entry.get("fieldsV1") or {} for entry in created), (applied or {}).get("fieldsV1") or {}
    )
    kept = [entry for entry in entries if not _is_own(entry, "Update") and entry is not applied]
    taken_over = {**(applied or created[0]), "operation": "Apply", "fieldsV1": fields}
    taken_over.pop("subresource", None)
    metadata = live["metadata"]
    _read_to_end(
        kube.resource(child["apiVersion"], child["kind"]).patch(
            name=metadata["name"],
            namespace=metadata["namespace"],
            content_type="application/json-patch+json",
            body=[
                {"op": "replace", "path": "/metadata/managedFields", "value": [*kept, taken_over]},
                # "replace", not "test": a stale read then fails as a conflict, tried again.
                {"op": "replace", "path": "/metadata/resourceVersion", "value": metadata["resourceVersion"]},
            ],
            serialize=False,
        )
    )


def _is_own(entry: Object, operation: str) -> bool:
    return (
        entry.get("manager") == FIELD_MANAGER and entry.get("operation") == operation and not entry.get("subresource")
    )


def _union(fields: Object, more: Object) -> Object:
    """Two field sets of managedFields (`fieldsV1`), as one."""
    return {key: _union(fields.get(key) or {}, more.get(key) or {}) for key in fields.keys() | more.keys()}


def _read_to_end(answer: BaseHTTPResponse) -> None:
    """An answer read to its end, though not looked at: until then it holds its connection,
    and the next request would open another (a TLS handshake, slow for both ends under a
    burst). Not made into objects: no time spent on it."""
    answer.drain_conn()


def child_reference(child: Mapping[str, Any]) -> Object:
    """Enough of a child to find it by and to tell its mode: what waits in a queue
    instead of the whole object."""
    metadata = child["metadata"]
    return {
        "apiVersion": child["apiVersion"],
        "kind": child["kind"],
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": dict(metadata.get("labels") or {}),
        },
    }


def read_child(kube: Kube, child: Object) -> Object | None:
    """The live object of a rendered child, or None if it does not exist (yet)."""
    metadata = child["metadata"]
    try:
        live = kube.resource(child["apiVersion"], child["kind"]).get(
            name=metadata["name"], namespace=metadata["namespace"]
        )
    except NotFoundError:
        return None
    return {**live.to_dict(), "kind": child["kind"]}


def owned_children(kube: Kube, namespace: str, owner_name: str, owner_uid: str, scaled_objects: bool) -> list[Object]:
    """The live children this ModelDeployment controls (not, say, Jobs its CronJob made)."""
    found = []
    for api_version, kind in (*CHILD_KINDS, *([SCALED_OBJECT] if scaled_objects else [])):
        listing = kube.resource(api_version, kind).get(
            namespace=namespace, label_selector=f"{DEPLOYMENT_LABEL}={owner_name}"
        )
        for item in listing.items:
            item = item.to_dict()
            if any(
                ref.get("uid") == owner_uid and ref.get("controller")
                for ref in item["metadata"].get("ownerReferences", [])
            ):
                found.append({"apiVersion": api_version, **item, "kind": kind})
    return found


def prune_children(
    kube: Kube, namespace: str, owner_name: str, owner_uid: str, keep: list[Object], scaled_objects: bool = False
) -> list[str]:
    """Deletes owned children not in `keep`; returns what it deleted, as kind/name."""
    wanted = {(child["kind"], child["metadata"]["name"]) for child in keep}
    deleted = []
    for child in owned_children(kube, namespace, owner_name, owner_uid, scaled_objects):
        key = (child["kind"], child["metadata"]["name"])
        if key in wanted:
            continue
        try:
            kube.resource(child["apiVersion"], child["kind"]).delete(
                name=key[1],
                namespace=namespace,
                body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            continue
        deleted.append(f"{key[0]}/{key[1]}")
    return deleted
