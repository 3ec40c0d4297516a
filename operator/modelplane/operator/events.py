"""Kubernetes Events on a ModelDeployment, posted with the operator's own client: they
come from kopf handlers and from the loop that follows aliases alike, and kopf's poster
works only inside its handlers."""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable

from modelplane.operator.kube import Kube
from modelplane.operator.objects import Object
from modelplane.operator.spec import API_VERSION, KIND
from modelplane.operator.status import now

# post_event(reason, message, warning) records a Kubernetes Event on the ModelDeployment.
PostEvent = Callable[[str, str, bool], None]
COMPONENT = "modelplane-operator"
MAX_MESSAGE = 1024  # what the API server accepts
REQUEST_SECONDS = 10  # a request that hangs must not hold up every later Event
INSTANCE = socket.gethostname()  # the pod's name, in a cluster

logger = logging.getLogger(__name__)


class EventPoster:
    """Posts Events from one thread, in the order they happened, started and stopped by
    its owner. A daemon thread, so that Events still queued when the operator exits are
    dropped rather than holding it up."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._queued: queue.SimpleQueue[Object | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._post_queued, name="events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = REQUEST_SECONDS) -> None:
        """Posts what is queued (as long as `timeout` allows), then stops the thread."""
        if self._thread is not None:
            self._queued.put(None)
            self._thread.join(timeout)
            self._thread = None

    def poster(self, namespace: str, name: str, uid: str | None) -> PostEvent:
        """Posts Events on the ModelDeployment `namespace`/`name` (its uid, when known)."""
        involved = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "namespace": namespace,
            "name": name,
            **({"uid": uid} if uid else {}),
        }

        def post(reason: str, message: str, warning: bool) -> None:
            """Queues the Event: posting it is no reason to hold up the work that caused it."""
            stamp = now()
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{name}.", "namespace": namespace},
                "involvedObject": involved,
                "type": "Warning" if warning else "Normal",
                "reason": reason,
                "message": message[:MAX_MESSAGE],
                "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT,
                "reportingInstance": INSTANCE,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            self._queued.put(event)

        return post

    def _post_queued(self) -> None:
        while (event := self._queued.get()) is not None:
            self._create(event)

    def _create(self, event: Object) -> None:
        try:
            self._kube.resource("v1", "Event").create(
                body=event, namespace=event["metadata"]["namespace"], _request_timeout=REQUEST_SECONDS
            )
        except Exception as error:  # noqa: BLE001 - posting an Event must never stop the caller
            # An Event is a courtesy: failing to post one (a namespace being deleted, the API
            # server gone) must not stop the posting of later ones.
            logger.warning(
                "[%s] could not post the Event %s: %s",
                event["involvedObject"]["name"],
                event["reason"],
                getattr(error, "reason", error),
            )
