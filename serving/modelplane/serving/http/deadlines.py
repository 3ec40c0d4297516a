"""Uvicorn's HTTP/1.1 protocol with deadlines and a size limit for reading a request.

Uvicorn closes a keep-alive connection that stays idle between requests, but waits for
ever on a connection that never sends its first request, sends half its headers, or
trickles its body, and takes headers of any size: each holds a socket, a file
descriptor and memory, and enough of them starve the server. Here a request's headers
must arrive within one deadline of the connection opening, or of the first byte after
the previous request, and its body within another of the headers; a connection that
misses either is closed. Headers past a size limit get a 431.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Request line and headers together; browsers and proxies stop well below this.
MAX_HEADER_BYTES = 64 * 1024


def _closing(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
        + str(len(message)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + message
    )


_TIMED_OUT = _closing(b"408 Request Timeout", b"the request's headers did not all arrive in time\n")
_TOO_LARGE = _closing(
    b"431 Request Header Fields Too Large", f"the request line and headers are over {MAX_HEADER_BYTES} bytes\n".encode()
)


class ReadDeadlines(HttpToolsProtocol):
    # Set from the server's settings before it listens, in every server process.
    header_seconds = 10.0
    body_seconds = 60.0

    @classmethod
    def configure(cls, header_seconds: float, body_seconds: float) -> None:
        cls.header_seconds, cls.body_seconds = header_seconds, body_seconds

    # One timer per connection, not one per phase of every request: a phase only notes
    # when it is due, which costs far less than scheduling and cancelling a timer twice a
    # request. The timer wakes at the earliest a phase begun since could be due, checks,
    # and sleeps again.
    _timer: asyncio.TimerHandle | None = None
    _due: float | None = None  # when the phase under way must end; None between requests
    _late: Callable[[], None] | None = None
    _reading_headers = True  # from a request's first byte (or the connection's start) to its headers' end
    _header_bytes = 0

    # asyncio types the argument as any transport; a stream protocol is given a Transport,
    # which is what uvicorn's own override (which ignores the same error) takes.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_seconds, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Any byte after a request (a new request, or the blank lines a parser skips)
        # starts the clock for the next one's headers.
        if self._due is None:
            self._arm(self.header_seconds, self._headers_late)
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # The parser holds a header until it ends, so the limit is checked on what has
        # arrived: at most one read past it is ever held.
        if self._reading_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._close_with(_TOO_LARGE)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading_headers = False
        self._arm(self.body_seconds, self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._reading_headers, self._header_bytes = True, 0

    def _arm(self, seconds: float, late: Callable[[], None]) -> None:
        now = self.loop.time()
        self._due, self._late = now + seconds, late
        if self._timer is None:
            self._sleep(now)

    def _disarm(self) -> None:
        self._due = self._late = None

    def _check(self) -> None:
        now = self.loop.time()
        due, late = self._due, self._late
        if due is not None and late is not None and due <= now:
            self._timer = None
            self._disarm()
            late()  # which may arm the next phase, and so the timer
            return
        self._sleep(now)

    def _sleep(self, now: float) -> None:
        # A phase begun from now on is due no sooner than the shorter deadline from now,
        # so waking then, or when the phase under way is due, is never late.
        wake = now + min(self.header_seconds, self.body_seconds)
        self._timer = self.loop.call_at(wake if self._due is None else min(self._due, wake), self._check)

    def _headers_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request waits for the answer before it: its clock restarts.
            self._arm(self.header_seconds, self._headers_late)
            return
        # A connection opened ahead of use and never used is closed without a word; one
        # whose headers stopped half-way is told why.
        self._close_with(_TIMED_OUT if self._header_bytes else b"")

    def _body_late(self) -> None:
        # The app is reading the body: closing the connection ends its read with a
        # disconnect, and it stops there.
        self._close_with(b"")

    def _close_with(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            if answer:
                self.transport.write(answer)
            self.transport.close()
