"""What every piece of the operator's work needs, made once when it starts and handed
to each piece explicitly: its settings, its client of the API server, the newest objects
it has seen, the registry's answers, the writer of status and the poster of Events."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from modelplane.operator.cache import ObjectCache
from modelplane.operator.events import EventPoster, PostEvent
from modelplane.operator.kube import Kube
from modelplane.operator.registry import RegistryClient, own_credentials
from modelplane.operator.render.common import SCALED_OBJECT
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.status_store import StatusStore


@dataclass(frozen=True)
class OperatorContext:
    settings: OperatorSettings
    kube: Kube
    cache: ObjectCache
    registry: RegistryClient
    statuses: StatusStore
    events: EventPoster

    @classmethod
    def connect(cls, settings: OperatorSettings, threads: int, kubeconfig: str | None = None) -> OperatorContext:
        """A context for `threads` threads sending requests at once, as its client keeps a
        connection for each (and one for the Events poster's). It asks the API server once
        whether KEDA is installed: KEDA installed later takes an operator restart to be used."""
        kube = Kube(connections=threads + 1, kubeconfig=kubeconfig)
        settings = dataclasses.replace(
            settings, render=dataclasses.replace(settings.render, scaled_objects=kube.serves(*SCALED_OBJECT))
        )
        cache = ObjectCache(kube)
        return cls(
            settings=settings,
            kube=kube,
            cache=cache,
            registry=RegistryClient(settings.registries, kube, own_credentials()),
            statuses=StatusStore(kube, cache),
            events=EventPoster(kube),
        )

    def poster(self, namespace: str, name: str, uid: str | None = None) -> PostEvent:
        return self.events.poster(namespace, name, uid)
