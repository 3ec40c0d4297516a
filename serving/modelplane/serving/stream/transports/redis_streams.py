"""Redis Streams: a consumer group read with XREADGROUP, entries acknowledged with XACK.

An entry holds the event in its `value` field and, optionally, its key in `key`. After a
restart a consumer first re-reads its own pending entries (delivered, never acknowledged),
and from time to time claims entries another consumer of the group left pending too long
(it died), so nothing stays pending for ever.
"""

from __future__ import annotations

import time
from typing import Any, TypeAlias, cast

import redis.asyncio as redis
from redis.exceptions import ResponseError

from modelplane.contract import StreamAddress
from modelplane.serving.stream.messages import Event, Outgoing

CLAIM_EVERY_SECONDS = 30.0
CLAIM_IDLE_MS = 60_000

# Entries as a client that does not decode answers: (entry id, fields), in bytes.
_Entries: TypeAlias = "list[tuple[bytes, dict[bytes, bytes] | None]]"
# XREADGROUP's answer over RESP2, these clients' protocol: [[stream, entries]]. redis-py
# types the answers of every protocol at once.
_Resp2Reply: TypeAlias = "list[list[Any]]"


class RedisSource:
    def __init__(self, address: StreamAddress, group: str, consumer: str):
        self.stream, self.group, self.consumer = address.name, group, consumer
        self.client = redis.Redis(host=address.host, port=address.port)
        # Reading this consumer's own pending entries, after the last one read (its
        # acknowledgement may still be on its way): "0" from the start, None when done.
        self._pending_after: str | bytes | None = "0"
        self._claimed_at = time.monotonic()
        self._claim_idle_ms = int(address.options.get("claim_idle_ms", CLAIM_IDLE_MS))

    async def start(self) -> None:
        try:
            # From the start of the stream: a new group scores the backlog too.
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        if self._pending_after is not None:
            reply = cast(
                _Resp2Reply,
                await self.client.xreadgroup(
                    self.group, self.consumer, {self.stream: self._pending_after}, count=max_count
                ),
            )
            if entries := (reply[0][1] if reply else []):
                self._pending_after = entries[-1][0]
                return self._events(entries)
            self._pending_after = None
        if time.monotonic() - self._claimed_at >= min(CLAIM_EVERY_SECONDS, self._claim_idle_ms / 1000):
            self._claimed_at = time.monotonic()
            _, entries, *_ = await self.client.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, "0-0", count=max_count
            )
            if entries:
                return self._events(entries)
        reply = cast(
            _Resp2Reply,
            await self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=max_count, block=max(1, int(wait_seconds * 1000))
            ),
        )
        return self._events(reply[0][1] if reply else [])

    def _events(self, entries: _Entries) -> list[Event]:
        events = []
        for entry_id, fields in entries:
            fields = fields or {}
            # An entry id is the time Redis stored it, in milliseconds, and a sequence number.
            written_at = int(entry_id.split(b"-")[0]) / 1000
            events.append(
                Event(
                    value=fields.get(b"value", b""),
                    key=fields.get(b"key"),
                    content_type=_text(fields.get(b"content-type")),
                    receipt=entry_id,
                    written_at=written_at,
                    origin={"stream": self.stream, "id": entry_id.decode()},
                )
            )
        return events

    async def ack(self, events: list[Event]) -> None:
        if events:
            await self.client.xack(self.stream, self.group, *(cast(bytes, event.receipt) for event in events))

    async def lag(self) -> int | None:
        groups = await self.client.xinfo_groups(self.stream)
        mine = next((group for group in groups if group["name"].decode() == self.group), None)
        return mine.get("lag") if mine else None

    async def close(self) -> None:
        await self.client.aclose()


class RedisSink:
    def __init__(self, address: StreamAddress):
        self.stream = address.name
        self.client = redis.Redis(host=address.host, port=address.port)

    async def start(self) -> None:
        await self.client.ping()

    async def send(self, messages: list[Outgoing]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for message in messages:
            fields: dict[str, bytes | str] = {"value": message.value, **message.headers}
            if message.key is not None:
                fields["key"] = message.key
            # redis-py takes the fields as a dict invariant in its types, though it only reads
            # them: a dict of str keys and bytes or str values is one it writes.
            pipe.xadd(self.stream, fields)  # type: ignore[arg-type]
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value is not None else None
