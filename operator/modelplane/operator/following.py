"""One loop per operator that polls the registry for every ModelDeployment following an
alias and settles every rollout in progress.

Not a kopf daemon or timer per resource: kopf puts its finalizer on each resource that
has one, and a stopped operator would then block deleting the resource and its
namespace. One loop also keeps a single task and a single copy of each body, however
many resources there are."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from modelplane.operator.manifest import parse_manifest
from modelplane.operator.objects import Object
from modelplane.operator.status import ModelDeploymentStatus
from modelplane.operator.workqueue import WorkQueue

SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class _Followed:
    """What the loop needs of a resource: the alias it follows, if any, how often it asks
    the registry, and whether it has a rollout in progress."""

    model: str
    alias: str | None
    poll_interval_seconds: float
    rolling_out: bool

    @classmethod
    def of(cls, body: Object) -> _Followed:
        spec = parse_manifest(body, check_rules=False).spec
        return cls(
            spec.model.name,
            spec.model.alias if spec.rollout.track else None,
            spec.rollout.poll_interval_seconds,
            ModelDeploymentStatus.of(body).target_version is not None,
        )


def _asking(followed: _Followed) -> tuple[str, str | None, float]:
    return followed.model, followed.alias, followed.poll_interval_seconds


class Watchlist:
    """The resources the loop looks after, by uid, with the latest body seen of each and
    when its alias is next due a poll. Used from the event loop's thread only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bodies: dict[str, Object] = {}
        self._followed: dict[str, _Followed] = {}
        self._due: dict[str, float] = {}
        self.woken = asyncio.Event()

    def observe(self, body: Object) -> None:
        """Takes in a body no one changes any more (a watch event's)."""
        uid = body["metadata"]["uid"]
        followed = _Followed.of(body)
        if body["metadata"].get("deletionTimestamp") or not (followed.alias or followed.rolling_out):
            self.forget(uid)
            return
        before = self._followed.get(uid)
        self._bodies[uid], self._followed[uid] = body, followed
        if not followed.alias:
            self._due.pop(uid, None)
        elif uid not in self._due or before is None or _asking(before) != _asking(followed):
            self._schedule(uid)

    def forget(self, uid: str) -> None:
        self._bodies.pop(uid, None)
        self._followed.pop(uid, None)
        self._due.pop(uid, None)

    def wake(self, model: str, alias: str) -> int:
        """Makes the followers of `model`@`alias` due now; says how many there are."""
        woken = [uid for uid in self._due if (self._followed[uid].model, self._followed[uid].alias) == (model, alias)]
        for uid in woken:
            self._due[uid] = self._clock()
        if woken:
            self.woken.set()
        return len(woken)

    def due_followers(self) -> list[Object]:
        """The bodies whose poll is due, each scheduled for its next one, jittered so that
        resources created together do not ask together."""
        now = self._clock()
        due = [uid for uid, when in self._due.items() if when <= now]
        for uid in due:
            self._schedule(uid)
        return [copy.deepcopy(self._bodies[uid]) for uid in due]

    def rollouts(self) -> list[Object]:
        """The bodies of the resources with a rollout in progress."""
        return [copy.deepcopy(self._bodies[uid]) for uid, followed in self._followed.items() if followed.rolling_out]

    def _schedule(self, uid: str) -> None:
        self._due[uid] = self._clock() + self._followed[uid].poll_interval_seconds * random.uniform(0.8, 1.2)


async def run(
    watchlist: Watchlist,
    queue: WorkQueue,
    follow: Callable[[Object], None],
    settle: Callable[[Object], None],
    tick: float = 1.0,
    settle_every: float = SETTLE_SECONDS,
) -> None:
    """Queues a poll of each due follower every `tick` (at once when woken) and the
    settling of each rollout every `settle_every` seconds, until cancelled."""
    settled = time.monotonic()
    while True:
        for body in watchlist.due_followers():
            queue.add(("follow", body["metadata"]["uid"]), functools.partial(follow, body))
        if time.monotonic() - settled >= settle_every:
            settled = time.monotonic()
            for body in watchlist.rollouts():
                queue.add(("settle", body["metadata"]["uid"]), functools.partial(settle, body))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watchlist.woken.wait(), timeout=tick)
        watchlist.woken.clear()
