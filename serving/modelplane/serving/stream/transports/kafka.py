"""Kafka, with confluent-kafka: a consumer group reading from the earliest offset (a new
group scores the backlog, not only what arrives after it joined), offsets committed by
hand after the sink confirmed, and an idempotent producer that waits for every in-sync
replica, so a retried send never writes a prediction twice.

The client is blocking; its calls run in a thread so the event loop keeps serving probes.
"""

from __future__ import annotations

import asyncio

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from modelplane.contract import StreamAddress
from modelplane.serving.stream.messages import Event, Outgoing


def _servers(address: StreamAddress) -> str:
    return address.server


class KafkaSource:
    def __init__(self, address: StreamAddress, group: str):
        self.topic = address.name
        self.consumer = Consumer(
            {
                "bootstrap.servers": _servers(address),
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )

    async def start(self) -> None:
        self.consumer.subscribe([self.topic])

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        fetched = await asyncio.to_thread(self.consumer.consume, max_count, wait_seconds)
        events = []
        for message in fetched:
            if message.error():
                raise KafkaException(message.error())
            origin = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
            kind, stamp_ms = message.timestamp()
            events.append(
                Event(
                    value=message.value() or b"",
                    key=message.key(),
                    origin=origin,
                    receipt=message,
                    written_at=stamp_ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else None,
                    content_type=_content_type(message.headers()),
                )
            )
        return events

    async def ack(self, events: list[Event]) -> None:
        if not events:
            return
        # The next offset to read, per partition: everything before it is done.
        following: dict[tuple[str, int], int] = {}
        for event in events:
            where = (event.origin["topic"], event.origin["partition"])
            following[where] = max(following.get(where, 0), event.origin["offset"] + 1)
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in following.items()]
        await asyncio.to_thread(self.consumer.commit, offsets=offsets, asynchronous=False)

    async def lag(self) -> int | None:
        def measure() -> int:
            total = 0
            for position in self.consumer.position(self.consumer.assignment()):
                # None when the offsets are not cached yet, which confluent-kafka's stub leaves out.
                _, high = self.consumer.get_watermark_offsets(position, cached=True) or (0, 0)  # type: ignore[unreachable]
                total += max(0, high - max(position.offset, 0))
            return total

        return await asyncio.to_thread(measure)

    async def close(self) -> None:
        await asyncio.to_thread(self.consumer.close)


class KafkaSink:
    def __init__(self, address: StreamAddress):
        self.topic = address.name
        self.producer = Producer(
            {
                "bootstrap.servers": _servers(address),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # A report for each failure only: no Message object and no Python call
                # per delivered message.
                "delivery.report.only.error": True,
            }
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.producer.list_topics, self.topic, 30)

    async def send(self, messages: list[Outgoing]) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        def produce_all() -> int:
            produce, topic = self.producer.produce, self.topic
            for message in messages:
                while True:
                    try:
                        # confluent-kafka's stub takes headers as a dict invariant in its values, though
                        # it only reads them: a dict of str values is one it accepts.
                        produce(topic, message.value, message.key, headers=message.headers, on_delivery=delivered)  # type: ignore[arg-type]
                        break
                    except BufferError:  # the local queue is full: let it drain
                        self.producer.poll(0.1)
            return self.producer.flush(60)

        if await asyncio.to_thread(produce_all) or failures:
            raise KafkaException(
                f"Kafka did not confirm {len(failures) or 'some'} predictions: {failures[:1] or 'timed out'}"
            )

    async def close(self) -> None:
        await asyncio.to_thread(self.producer.flush, 30)


def _content_type(headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None) -> str | None:
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for name, value in pairs:
        if name.lower() == "content-type" and value is not None:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None
