"""One loop per operator that polls the registry for every ModelDeployment following an
alias and settles every rollout in progress.

Not a kopf daemon or timer per resource: kopf puts its finalizer on each resource that
has one, and a stopped operator would then block deleting the resource and its
namespace. One loop also keeps a single task and a single copy of each body, however
many resources there are."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable, Iterable

from modelplane.operator.registry import RegistryError

logger = logging.getLogger(__name__)
SETTLE_SECONDS = 5.0
# How many resources are polled or settled at once, each in a thread of its own.
CONCURRENCY = 4


def follows_alias(body: dict) -> bool:
    spec = body.get("spec") or {}
    return bool((spec.get("model") or {}).get("alias")) and (spec.get("rollout") or {}).get("track", True)


def rolling_out(body: dict) -> bool:
    return bool((body.get("status") or {}).get("targetVersion"))


def _followed(body: dict) -> tuple[str, str, float]:
    spec = body["spec"]
    return spec["model"]["name"], spec["model"]["alias"], (spec.get("rollout") or {}).get("pollIntervalSeconds", 60)


class Watchlist:
    """The resources the loop looks after, by uid, with the latest body seen of each and
    when its alias is next due a poll. Used from the event loop's thread only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bodies: dict[str, dict] = {}
        self._due: dict[str, float] = {}
        self.woken = asyncio.Event()

    def observe(self, body: dict) -> None:
        uid = body["metadata"]["uid"]
        if body["metadata"].get("deletionTimestamp") or not (follows_alias(body) or rolling_out(body)):
            self.forget(uid)
            return
        before = self._bodies.get(uid)
        self._bodies[uid] = copy.deepcopy(body)
        if not follows_alias(body):
            self._due.pop(uid, None)
        elif uid not in self._due or _followed(before) != _followed(body):
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

    def due_followers(self) -> list[dict]:
        """The bodies whose poll is due, each scheduled for its next one, jittered so that
        resources created together do not ask together."""
        now = self._clock()
        due = [uid for uid, when in self._due.items() if when <= now]
        for uid in due:
            self._schedule(uid)
        return [copy.deepcopy(self._bodies[uid]) for uid in due]

    def rolling_out(self) -> list[dict]:
        return [copy.deepcopy(body) for body in self._bodies.values() if rolling_out(body)]

    def _schedule(self, uid: str) -> None:
        self._due[uid] = self._clock() + _followed(self._bodies[uid])[2] * random.uniform(0.8, 1.2)


async def run(watchlist: Watchlist, follow: Callable[[dict], None], settle: Callable[[dict], None],
              tick: float = 1.0) -> None:
    """Polls due followers every `tick` (at once when woken) and settles rollouts every
    few seconds, until cancelled."""
    settled = time.monotonic()
    while True:
        await _each(follow, watchlist.due_followers())
        if time.monotonic() - settled >= SETTLE_SECONDS:
            settled = time.monotonic()
            await _each(settle, watchlist.rolling_out())
        try:
            await asyncio.wait_for(watchlist.woken.wait(), timeout=tick)
        except TimeoutError:
            pass
        watchlist.woken.clear()


async def _each(call: Callable[[dict], None], bodies: Iterable[dict]) -> None:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(body: dict) -> None:
        where = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        async with limit:
            try:
                await asyncio.to_thread(call, body)
            except RegistryError as error:
                logger.warning("[%s] cannot follow the alias: %s", where, error)
            except Exception:
                # One resource's failure must not stop the loop for the others.
                logger.exception("[%s] %s failed", where, call.__name__)

    await asyncio.gather(*(one(body) for body in bodies))
