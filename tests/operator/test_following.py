"""The watchlist behind the operator's one loop: who is polled when, who is settled."""

from __future__ import annotations

import asyncio

from modelplane.operator.following import Watchlist, run
from modelplane.operator.workqueue import WorkQueue


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _body(uid: str, alias: str | None = "champion", interval: int = 60, status: dict | None = None, **rollout) -> dict:
    model = {"name": "iris", **({"alias": alias} if alias else {"version": "1"})}
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"uid": uid, "namespace": "ns", "name": uid},
        "spec": {"mode": "online", "model": model, "rollout": {"pollIntervalSeconds": interval, **rollout}},
        "status": status or {},
    }


def test_a_follower_is_due_once_per_jittered_interval():
    clock = Clock()
    watchlist = Watchlist(clock)
    watchlist.observe(_body("a", interval=60))
    clock.now += 47
    assert watchlist.due_followers() == []
    clock.now += 26
    assert [body["metadata"]["uid"] for body in watchlist.due_followers()] == ["a"]
    assert watchlist.due_followers() == []


def test_a_new_body_keeps_its_schedule_unless_what_it_follows_changed():
    clock = Clock()
    watchlist = Watchlist(clock)
    watchlist.observe(_body("a", interval=60))
    clock.now += 73
    watchlist.observe(_body("a", interval=60, status={"modelVersion": "1"}))
    due = watchlist.due_followers()
    assert due[0]["status"] == {"modelVersion": "1"}, "the latest body is the one polled"
    watchlist.observe(_body("a", interval=3600))
    clock.now += 73
    assert watchlist.due_followers() == []


def test_only_followers_and_rollouts_are_kept():
    watchlist = Watchlist(Clock())
    watchlist.observe(_body("fixed", alias=None))
    watchlist.observe(_body("pinned", track=False))
    watchlist.observe(_body("rolling", alias=None, status={"targetVersion": "2"}))
    watchlist.observe({**_body("going"), "metadata": {**_body("going")["metadata"], "deletionTimestamp": "now"}})
    assert [body["metadata"]["uid"] for body in watchlist.rollouts()] == ["rolling"]
    assert watchlist.wake("iris", "champion") == 0


def test_the_webhook_makes_the_followers_of_its_alias_due_at_once():
    clock = Clock()
    watchlist = Watchlist(clock)
    watchlist.observe(_body("a"))
    watchlist.observe(_body("b", alias="challenger"))
    watchlist.observe(_body("c"))
    watchlist.forget("c")
    assert watchlist.wake("iris", "champion") == 1
    assert watchlist.woken.is_set()
    assert [body["metadata"]["uid"] for body in watchlist.due_followers()] == ["a"]


def test_the_loop_queues_due_polls_and_settles_rollouts():
    clock = Clock()
    watchlist, queue = Watchlist(clock), WorkQueue()
    watchlist.observe(_body("follower", interval=5))
    watchlist.observe(_body("rolling", alias=None, status={"targetVersion": "2"}))
    clock.now += 7
    done = []

    async def until_settled_twice() -> None:
        work = [
            asyncio.create_task(
                run(
                    watchlist,
                    queue,
                    lambda body: done.append(("follow", body["metadata"]["uid"])),
                    lambda body: done.append(("settle", body["metadata"]["uid"])),
                    tick=0.05,
                    settle_every=0.3,
                )
            ),
            asyncio.create_task(queue.serve(workers=2)),
        ]
        while done.count(("settle", "rolling")) < 2:
            await asyncio.sleep(0.01)
        for task in work:
            task.cancel()

    asyncio.run(asyncio.wait_for(until_settled_twice(), timeout=30))
    # Settling recurs on real time; the fake clock stood still after the first poll, so
    # however many ticks passed meanwhile, the follower was polled once.
    assert done.count(("follow", "follower")) == 1, done
    assert set(done[1:]) == {("settle", "rolling")}
