"""Kubernetes Events on a ModelDeployment, posted with the operator's own client: they
come from kopf handlers and from the loop that follows aliases alike, and kopf's poster
works only inside its handlers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from modelplane.operator.kube import resource
from modelplane.operator.spec import API_VERSION, KIND
from modelplane.operator.status import now

# post_event(reason, message, warning) records a Kubernetes Event on the ModelDeployment.
PostEvent = Callable[[str, str, bool], None]
COMPONENT = "modelplane-operator"
MAX_MESSAGE = 1024  # what the API server accepts
# Queued Events are still posted as the operator exits; an unreachable API server must not keep it.
REQUEST_SECONDS = 10

logger = logging.getLogger(__name__)
# One thread, so that Events are posted in the order they happened.
_posting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")


def poster(namespace: str, name: str, uid: str | None) -> PostEvent:
    involved = {"apiVersion": API_VERSION, "kind": KIND, "namespace": namespace, "name": name,
                **({"uid": uid} if uid else {})}

    def post(reason: str, message: str, warning: bool) -> None:
        """Queues the Event: posting it is no reason to hold up the work that caused it."""
        stamp = now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": involved, "type": "Warning" if warning else "Normal",
            "reason": reason, "message": message[:MAX_MESSAGE],
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        _posting.submit(_create, event)

    return post


def _create(event: dict) -> None:
    try:
        resource("v1", "Event").create(body=event, namespace=event["metadata"]["namespace"],
                                       _request_timeout=REQUEST_SECONDS)
    except Exception as error:
        # An Event is a courtesy: failing to post one (a namespace being deleted, the API
        # server gone) must not stop the posting of later ones.
        logger.warning("[%s] could not post the Event %s: %s", event["involvedObject"]["name"], event["reason"],
                       getattr(error, "reason", error))
