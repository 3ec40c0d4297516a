"""Making the cluster hold exactly the rendered children: create or update each, prune
the ones the current mode no longer needs."""

from __future__ import annotations

import copy

from modelplane.operator.kube import NotFoundError, resource
from modelplane.operator.render.common import DEPLOYMENT_LABEL, content_hash

FIELD_MANAGER = "modelplane"
SPEC_HASH_ANNOTATION = "modelplane.io/spec-hash"
# The kinds whose status is a ModelDeployment's readiness.
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")
# Every kind a ModelDeployment may own, in any mode; pruning looks at all of them.
CHILD_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
)
# Kinds of add-ons a cluster may not have; looked at only where the operator found them.
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")


def apply_children(children: list[dict], compare: bool = True) -> int:
    """Applies each child whose rendered content changed (each one, unread, without
    `compare`); returns how many were written.

    The comparison is against a hash of the rendered object stored on it, not against the
    live object, whose server defaults would make every pass look like a change."""
    written = 0
    for child in map(copy.deepcopy, children):
        desired_hash = content_hash(child)
        metadata = child["metadata"]
        metadata.setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = desired_hash
        live = read_child(child) if compare else None
        if live and (live["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION) == desired_hash:
            continue
        # Server-side apply: fields this manager stops setting are removed, and fields
        # others own (the autoscaler's replica count) are left to them.
        answer = resource(child["apiVersion"], child["kind"]).server_side_apply(
            body=child, namespace=metadata["namespace"], field_manager=FIELD_MANAGER, force_conflicts=True,
            serialize=False)  # no time spent making objects of an answer not looked at
        # Read to its end all the same: until then it holds its connection, and the next
        # request would open another (a TLS handshake, slow for both ends under a burst).
        answer.drain_conn()
        written += 1
    return written


def child_reference(child) -> dict:
    """Enough of a child to find it by and to tell its mode: what waits in a queue
    instead of the whole object."""
    metadata = child["metadata"]
    return {"apiVersion": child["apiVersion"], "kind": child["kind"],
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "labels": dict(metadata.get("labels") or {})}}


def read_child(child: dict) -> dict | None:
    """The live object of a rendered child, or None if it does not exist (yet)."""
    metadata = child["metadata"]
    try:
        live = resource(child["apiVersion"], child["kind"]).get(name=metadata["name"], namespace=metadata["namespace"])
    except NotFoundError:
        return None
    return {**live.to_dict(), "kind": child["kind"]}


def owned_children(namespace: str, owner_name: str, owner_uid: str, scaled_objects: bool) -> list[dict]:
    """The live children this ModelDeployment controls (not, say, Jobs its CronJob made)."""
    found = []
    for api_version, kind in (*CHILD_KINDS, *([SCALED_OBJECT] if scaled_objects else [])):
        listing = resource(api_version, kind).get(namespace=namespace, label_selector=f"{DEPLOYMENT_LABEL}={owner_name}")
        for item in listing.items:
            item = item.to_dict()
            if any(ref.get("uid") == owner_uid and ref.get("controller") for ref in item["metadata"].get("ownerReferences", [])):
                found.append({"apiVersion": api_version, **item, "kind": kind})
    return found


def prune_children(namespace: str, owner_name: str, owner_uid: str, keep: list[dict],
                   scaled_objects: bool = False) -> list[str]:
    """Deletes owned children not in `keep`; returns what it deleted, as kind/name."""
    wanted = {(child["kind"], child["metadata"]["name"]) for child in keep}
    deleted = []
    for child in owned_children(namespace, owner_name, owner_uid, scaled_objects):
        key = (child["kind"], child["metadata"]["name"])
        if key in wanted:
            continue
        try:
            resource(child["apiVersion"], child["kind"]).delete(
                name=key[1], namespace=namespace, body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            continue
        deleted.append(f"{key[0]}/{key[1]}")
    return deleted


def served(api_version: str, kind: str) -> bool:
    """Whether the API server serves `kind` (an add-on's CRD is installed)."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    try:
        resource(api_version, kind)
    except ResourceNotFoundError:
        return False
    return True
