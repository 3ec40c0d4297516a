"""The newest version the operator has seen of each ModelDeployment and workload, and
why the pods of a model version said they stopped.

Deciding a status needs the ModelDeployment and its workload as they are now; reading both
from the API server for every workload event was most of the operator's requests under
a burst. Their watch streams, and the answers to the operator's own writes, already carry
them: this keeps the newest of what arrived, by resourceVersion, and reads the API server
only for what it has not seen. A stale copy costs no correctness: status writes are
guarded by resourceVersion, a conflict reads afresh, and every later change of a
workload brings an event that looks again. Applying children does not read from here:
whether a child exists decides whether it is written.
"""

from __future__ import annotations

import threading
from typing import cast

from modelplane.operator.kube import Kube, NotFoundError
from modelplane.operator.objects import Object
from modelplane.operator.render.common import WORKLOAD_KINDS
from modelplane.operator.spec import KIND

# Kinds worth keeping: a ModelDeployment's own, and those whose status is its readiness.
CACHED_KINDS = (KIND, *WORKLOAD_KINDS)


def _version(body: Object) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def _summary(kind: str, body: Object) -> Object:
    """The object without what status decisions never read and most of its size is:
    managedFields, and a workload's pod spec (its template's metadata stays)."""
    metadata = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    kept = {**body, "kind": kind, "metadata": metadata}
    if kind != KIND and isinstance(body.get("spec"), dict):
        kept["spec"] = _without_pod_spec(body["spec"], kind)
    return kept


def _without_pod_spec(spec: Object, kind: str) -> Object:
    if kind == "CronJob":
        job = spec.get("jobTemplate") or {}
        return {**spec, "jobTemplate": {**job, "spec": _without_pod_spec(job.get("spec") or {}, "Job")}}
    return {**spec, "template": {"metadata": (spec.get("template") or {}).get("metadata") or {}}}


class ObjectCache:
    """Used from the event loop's thread and the work queue's threads alike."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._lock = threading.Lock()
        self._newest: dict[tuple[str, str, str], Object] = {}
        # (namespace, ModelDeployment, model version): the termination message its pods'
        # model container last exited with, such as a model refused at load.
        self._stopped: dict[tuple[str, str, str], str] = {}

    def remember(self, kind: str, body: Object) -> None:
        """Keeps `body` unless a newer version of the object is kept already; callers hand
        over a body no one changes any more (a watch event's, an answer's). Versions that
        are not integers (an API server not backed by etcd) are never kept, so every read
        goes to the API server."""
        self._keep(kind, _summary(kind, body))

    def _keep(self, kind: str, kept: Object) -> None:
        version = _version(kept)
        if kind not in CACHED_KINDS or version is None:
            return
        key = (kind, kept["metadata"]["namespace"], kept["metadata"]["name"])
        with self._lock:
            current = self._newest.get(key)
            # What is kept has a version: `_keep` keeps nothing else.
            if current is None or cast(int, _version(current)) < version:
                self._newest[key] = kept

    def holds(self, kind: str, namespace: str, name: str) -> bool:
        with self._lock:
            return (kind, namespace, name) in self._newest

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._newest.pop((kind, namespace, name), None)

    def newest(self, api_version: str, kind: str, namespace: str, name: str, fresh: bool = False) -> Object | None:
        """The object as last seen (`fresh`: as the API server has it now), or None if it
        does not exist; a workload without its pod spec. Callers must not change what they get."""
        if not fresh and kind in CACHED_KINDS:
            with self._lock:
                kept = self._newest.get((kind, namespace, name))
            if kept is not None:
                return kept
        try:
            live = {
                **self._kube.resource(api_version, kind).get(name=name, namespace=namespace).to_dict(),
                "kind": kind,
            }
        except NotFoundError:
            return None
        kept = _summary(kind, live)
        self._keep(kind, kept)
        return kept

    def newest_child(self, child: Object) -> Object | None:
        """The newest seen of a rendered child."""
        metadata = child["metadata"]
        return self.newest(child["apiVersion"], child["kind"], metadata["namespace"], metadata["name"])

    def remember_stop(self, namespace: str, deployment: str, version: str, message: str) -> bool:
        """Keeps why a pod of `version` stopped; True if that is news."""
        with self._lock:
            news = self._stopped.get((namespace, deployment, version)) != message
            self._stopped[(namespace, deployment, version)] = message
        return news

    def stop_message(self, namespace: str, deployment: str, version: str) -> str | None:
        with self._lock:
            return self._stopped.get((namespace, deployment, version))

    def forget_stops(self, namespace: str, deployment: str) -> None:
        with self._lock:
            for key in [key for key in self._stopped if key[:2] == (namespace, deployment)]:
                del self._stopped[key]
