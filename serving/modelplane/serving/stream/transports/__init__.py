"""The transports a stream is read from and written to, named by the URL's scheme.

Each source delivers batches of events and acknowledges them only when told, after their
predictions were confirmed by the sink: that ordering is what makes delivery at least once.
"""

from __future__ import annotations

from typing import Protocol

from modelplane.contract import StreamAddress
from modelplane.serving.stream.messages import Event, Outgoing


class Source(Protocol):
    async def start(self) -> None: ...

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        """Up to `max_count` events, waiting at most `wait_seconds` for the first."""

    async def ack(self, events: list[Event]) -> None:
        """Marks `events` done, so no consumer of the group gets them again."""

    async def lag(self) -> int | None:
        """Events of the group not yet delivered, where the transport tells."""

    async def close(self) -> None: ...


class Sink(Protocol):
    async def start(self) -> None: ...

    async def send(self, messages: list[Outgoing]) -> None:
        """Writes `messages`, returning once the transport confirmed every one."""

    async def close(self) -> None: ...


def source(url: str, group: str, consumer: str) -> Source:
    address = StreamAddress.parse(url)
    group = address.options.get("group", group)
    if address.scheme == "kafka":
        from modelplane.serving.stream.transports.kafka import KafkaSource

        return KafkaSource(address, group)
    if address.scheme == "redis":
        from modelplane.serving.stream.transports.redis_streams import RedisSource

        return RedisSource(address, group, consumer)
    from modelplane.serving.stream.transports.nats_jetstream import NatsSource

    return NatsSource(address, group)


def sink(url: str) -> Sink:
    address = StreamAddress.parse(url)
    if address.scheme == "kafka":
        from modelplane.serving.stream.transports.kafka import KafkaSink

        return KafkaSink(address)
    if address.scheme == "redis":
        from modelplane.serving.stream.transports.redis_streams import RedisSink

        return RedisSink(address)
    from modelplane.serving.stream.transports.nats_jetstream import NatsSink

    return NatsSink(address)
