"""Kubernetes Events on a ModelDeployment, posted with the operator's own client: they
come from kopf handlers and from the loop that follows aliases alike, and kopf's poster
works only inside its handlers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from modelplane.operator.kube import resource
from modelplane.operator.spec import API_VERSION, KIND
from modelplane.operator.status import now

# post_event(reason, message, warning) records a Kubernetes Event on the ModelDeployment.
PostEvent = Callable[[str, str, bool], None]
COMPONENT = "modelplane-operator"
MAX_MESSAGE = 1024  # what the API server accepts

logger = logging.getLogger(__name__)


def poster(namespace: str, name: str, uid: str | None) -> PostEvent:
    involved = {"apiVersion": API_VERSION, "kind": KIND, "namespace": namespace, "name": name,
                **({"uid": uid} if uid else {})}

    def post(reason: str, message: str, warning: bool) -> None:
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
        try:
            resource("v1", "Event").create(body=event, namespace=namespace)
        except ApiException as error:
            # An Event is a courtesy: failing to post one (a namespace being deleted) must not fail the work.
            logger.warning("[%s/%s] could not post the Event %s: %s", namespace, name, reason, error.reason)

    return post
