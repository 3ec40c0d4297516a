"""Starting, watching and stopping one test-bed component as a local process."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _kill_me_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ComponentFailed(RuntimeError):
    """A component did not start or stopped early; the message carries its log tail."""


# Below the kernel's ephemeral range (32768-60999 by default): a port the kernel hands
# out with bind(0) is also what it picks for outgoing connections, so between choosing it
# and the server binding it, any client's connection could take it.
_PORT_RANGE = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now and this process has not handed out."""
    while True:
        port = random.choice(_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text[-lines:])


class Component:
    """One server process with its own log file, stopped by its process id."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, die_with_parent: bool = True) -> Component:
        """Starts the process; `die_with_parent` ends it with the test run even if the
        run is killed, while `python -m tests.testbed up` leaves it running."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                # Its own session, so it outlives `python -m tests.testbed up` and a Ctrl-C
                # in the terminal reaches pytest only, which then stops it in order.
                start_new_session=True,
                preexec_fn=_kill_me_with_parent if die_with_parent else None,
            )
        return self

    def failure(self, why: str) -> ComponentFailed:
        return ComponentFailed(f"{self.name} {why}; last lines of {self.log_path}:\n{log_tail(self.log_path)}")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise self.failure(f"exited with code {self.process.returncode} before it was {what}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - any error only means "not yet"
                pass
            time.sleep(0.2)
        raise self.failure(f"was not {what} within {timeout:.0f} s")

    def stop(self, grace: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_pid(self.process.pid, grace)
        self.process.wait()


def stop_pid(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: a graceful kube-apiserver takes a minute.
    A component leads a process group of its own (it started a session), and the signals
    go to the whole group, so what it forked (server workers, a relay's connections)
    ends with it."""

    def send(signal_number: int) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal_number)
            else:
                os.kill(pid, signal_number)
        except ProcessLookupError:
            pass

    if not _alive(pid):
        return
    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    send(signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by an earlier `up`): fall back to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
