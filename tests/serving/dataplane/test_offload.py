"""Bodies are decoded in a helper process: the event loop runs while a body is decoded,
a body that takes too long is cut off, and the helper never outlives the server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelplane.serving.dataplane.offload import Offload
from modelplane.serving.errors import InvalidInput
from tests.conftest import show_logs_on_failure
from tests.serving import offload_work
from tests.serving.server import metric, start_server
from tests.waiting import eventually

pytestmark = pytest.mark.registry

LARGE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def roomy_server(request: pytest.FixtureRequest, server_env: dict[str, str], testbed_dir: Path):
    env = {**server_env, "MODELPLANE_MAX_BODY_BYTES": str(LARGE + 1024)}
    process, url = start_server("serve-large-bodies", env, testbed_dir / "logs")
    show_logs_on_failure(request.config, [process])
    yield process, url
    process.stop()


def _large_body(iris_features) -> tuple[bytes, int]:
    """Iris rows repeated to just under 16 MiB of dataframe_records."""
    rows = [json.dumps(record) for record in iris_features.to_dict("records")]
    size, count = 40, 0
    while size + len(rows[count % len(rows)]) + 1 < LARGE:
        size += len(rows[count % len(rows)]) + 1
        count += 1
    body = '{"dataframe_records": [' + ",".join(rows[index % len(rows)] for index in range(count)) + "]}"
    return body.encode(), count


def _decoded_aside(url: str) -> float:
    return metric(url, "modelplane_bodies_decoded_aside_total")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def test_the_event_loop_runs_while_the_helper_decodes(tmp_path: Path):
    started, allowed = tmp_path / "started", tmp_path / "allowed"

    async def scenario() -> tuple[int, int]:
        offload = Offload()
        try:
            decoding = asyncio.ensure_future(
                offload.in_helper(offload_work.pid_once_allowed, str(started), str(allowed))
            )
            turns = 0
            while not started.exists():  # the loop keeps turning while the helper starts and works
                await asyncio.sleep(0.01)
                assert not decoding.done(), decoding
            while turns < 10:
                await asyncio.sleep(0)
                turns += 1
            assert not decoding.done(), "the work ended before it was allowed to"
            allowed.touch()
            return await decoding, turns
        finally:
            offload.close()

    helper, turns = asyncio.run(scenario())

    assert helper != os.getpid() and turns == 10


def test_a_body_that_takes_too_long_is_cut_off_and_the_next_gets_a_new_helper():
    async def scenario():
        offload = Offload(decode_seconds=2)
        try:
            first = await offload.in_helper(offload_work.pid)
            with pytest.raises(InvalidInput, match="longer than 2 s to decode") as refused:
                await offload.in_helper(offload_work.forever)
            return first, refused.value.status_code, await offload.in_helper(offload_work.pid)
        finally:
            offload.close()

    first, status, second = asyncio.run(scenario())

    assert status == 400
    assert not _running(first), "the helper decoding too long was not stopped"
    assert second != first


def test_a_helper_that_died_between_bodies_is_replaced_for_the_next():
    async def scenario():
        offload = Offload()
        try:
            first = await offload.in_helper(offload_work.pid)
            os.kill(first, signal.SIGKILL)
            eventually(lambda: not _running(first), timeout=30, what="the helper to die")
            return first, await offload.in_helper(offload_work.pid)
        finally:
            offload.close()

    first, second = asyncio.run(scenario())

    assert second != first and second != os.getpid()


def test_probes_are_answered_while_four_16_mib_bodies_are_decoded_aside(roomy_server, iris_features):
    _, url = roomy_server
    body, rows = _large_body(iris_features)
    address = urlsplit(url)
    before = _decoded_aside(url)
    sent = [threading.Event() for _ in range(4)]
    answers: list[tuple[int, int]] = []

    def post(index: int) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=300)
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        sent[index].set()
        response = connection.getresponse()
        answers.append((response.status, len(json.loads(response.read())["predictions"])))

    posts = [threading.Thread(target=post, args=(index,)) for index in range(4)]
    for thread in posts:
        thread.start()
    for event in sent:
        assert event.wait(300), "a 16 MiB body was not taken in"
    # Each probe notes how many of the four had been answered when it got its own answer.
    probes = []
    while len(answers) < 4 and any(thread.is_alive() for thread in posts):
        status = urllib.request.urlopen(url + "/readyz", timeout=30).status
        probes.append((status, len(answers)))
    for thread in posts:
        thread.join(300)

    assert answers == [(200, rows)] * 4
    assert _decoded_aside(url) - before == 4, "the bodies were not decoded in the helper process"
    assert (200, 0) in probes, f"no probe was answered while all four were in flight: {probes}"


def test_the_helper_dies_with_the_server(server_env: dict[str, str], testbed_dir: Path, iris_features):
    env = {**server_env, "MODELPLANE_MAX_BODY_BYTES": str(LARGE + 1024)}
    process, url = start_server("serve-killed", env, testbed_dir / "logs")
    try:
        body, rows = _large_body(iris_features)
        request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
        assert len(json.loads(urllib.request.urlopen(request, timeout=300).read())["predictions"]) == rows
        helpers = _children(process.pid)
        assert helpers, "no helper process was started for the large body"

        os.kill(process.pid, signal.SIGKILL)  # the server alone, as the OOM killer would
        process.process.wait()

        eventually(
            lambda: not any(_running(pid) for pid in helpers),
            timeout=30,
            what="the helper processes to exit after the server was killed",
        )
    finally:
        process.stop()
