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

from modelplane.operator.objects import Object
from modelplane.operator.workqueue import WorkQueue

SETTLE_SECONDS = 5.0


def follows_alias(body: Object) -> bool:
    spec = body.get("spec") or {}
    return bool((spec.get("model") or {}).get("alias")) and (spec.get("rollout") or {}).get("track", True)


def rolling_out(body: Object) -> bool:
    return bool((body.get("status") or {}).get("targetVersion"))


def _followed(body: Object) -> tuple[str, str, float]:
    spec = body["spec"]
    return spec["model"]["name"], spec["model"]["alias"], (spec.get("rollout") or {}).get("pollIntervalSeconds", 60)


class Watchlist:
    """The resources the loop looks after, by uid, with the latest body seen of each and
    when its alias is next due a poll. Used from the event loop's thread only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bodies: dict[str, Object] = {}
        self._due: dict[str, float] = {}
        self.woken = asyncio.Event()

    def observe(self, body: Object) -> None:
        """Takes in a body no one changes any more (a watch event's)."""
        uid = body["metadata"]["uid"]
        if body["metadata"].get("deletionTimestamp") or not (follows_alias(body) or rolling_out(body)):
            self.forget(uid)
            return
        before = self._bodies.get(uid)
        self._bodies[uid] = body
        if not follows_alias(body):
            self._due.pop(uid, None)
        elif uid not in self._due or before is None or _followed(before) != _followed(body):
            self._schedule(uid)

    def forget(self, uid: str) -> None:
        self._bodies.pop(uid, None)
        self._due.pop(uid, None)

    def wake(self, model: str, alias: str) -> int:
        """Makes the followers of `model`@`alias` due now; says how many there are."""
        woken = [uid for uid in self._due if _followed(self._bodies[uid])[:2] == (model, alias)]
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
        return [copy.deepcopy(body) for body in self._bodies.values() if rolling_out(body)]

    def _schedule(self, uid: str) -> None:
        self._due[uid] = self._clock() + _followed(self._bodies[uid])[2] * random.uniform(0.8, 1.2)


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
