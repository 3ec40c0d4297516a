"""Uvicorn's HTTP/1.1 protocol with deadlines for reading a request.

Uvicorn closes a keep-alive connection that stays idle between requests, but waits for
ever on a connection that never sends its first request, sends half its headers, or
trickles its body: each holds a socket and a file descriptor, and enough of them starve
the server. Here a request's headers must arrive within one deadline of the connection
opening (or of its first byte, on a kept-alive connection) and its body within another of
the headers; a connection that misses either is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 41\r\nconnection: close\r\n\r\nthe request's headers did not all arrive\n")


class ReadDeadlines(HttpToolsProtocol):
    # Set from the server's settings before it listens, in every server process.
    header_seconds = 10.0
    body_seconds = 60.0

    @classmethod
    def configure(cls, header_seconds: float, body_seconds: float) -> None:
        cls.header_seconds, cls.body_seconds = header_seconds, body_seconds

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_seconds, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm(self.header_seconds, self._headers_late)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_seconds, self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, seconds: float, late) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()

    def _body_late(self) -> None:
        # The app is reading the body: closing the connection ends its read with a
        # disconnect, and it stops there.
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
