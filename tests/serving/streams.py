"""Test-side clients of the brokers: write input events, read what the consumer wrote."""

from __future__ import annotations

import asyncio
import json

from tests.testbed.brokers import Broker

KEY_HEADER = "Modelplane-Key"


class StreamClient:
    """Creates the streams of one test and reads and writes them, for one broker."""

    def __init__(self, broker: Broker, prefix: str):
        self.broker, self.prefix = broker, prefix

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def url(self, role: str) -> str:
        if self.broker.scheme == "nats":
            return self.broker.url(f"{self.prefix}.{role}", stream=self.name(role), ack_wait="3")
        if self.broker.scheme == "redis":
            return self.broker.url(self.name(role), claim_idle_ms="3000")
        return self.broker.url(self.name(role))

    def create(self, *roles: str) -> None:
        if self.broker.scheme == "nats":

            async def create():
                connection = await _nats(self.broker)
                for role in roles:
                    await connection.jetstream().add_stream(name=self.name(role), subjects=[f"{self.prefix}.{role}"])
                await connection.drain()

            asyncio.run(create())
        elif self.broker.scheme == "kafka":
            from confluent_kafka.admin import AdminClient, NewTopic

            admin = AdminClient({"bootstrap.servers": f"{self.broker.host}:{self.broker.port}"})
            for future in admin.create_topics(
                [NewTopic(self.name(role), num_partitions=2, replication_factor=1) for role in roles]
            ).values():
                future.result(30)

    def produce(self, role: str, events: list[tuple[str | None, bytes]], content_type: str | None = None) -> None:
        """Writes (key, value) events; `content_type`, if given, in each one's header (a
        field of a Redis entry)."""
        typed = {"content-type": content_type} if content_type is not None else {}
        if self.broker.scheme == "redis":
            import redis

            client = redis.Redis(host=self.broker.host, port=self.broker.port)
            pipe = client.pipeline(transaction=False)
            for key, value in events:
                pipe.xadd(self.name(role), {"value": value, **({"key": key} if key is not None else {}), **typed})
            pipe.execute()
            client.close()
        elif self.broker.scheme == "nats":

            async def produce():
                connection = await _nats(self.broker)
                jetstream = connection.jetstream()
                for key, value in events:
                    headers = {**({KEY_HEADER: key} if key is not None else {}), **typed}
                    await jetstream.publish(f"{self.prefix}.{role}", value, headers=headers or None)
                await connection.drain()

            asyncio.run(produce())
        else:
            from confluent_kafka import Producer

            producer = Producer({"bootstrap.servers": f"{self.broker.host}:{self.broker.port}"})
            failures = []
            for key, value in events:
                producer.produce(
                    self.name(role),
                    value,
                    key,
                    headers=list(typed.items()) or None,
                    on_delivery=lambda error, _: error is not None and failures.append(str(error)),
                )
            unsent = producer.flush(30)
            assert not failures and not unsent, f"{unsent} events unsent, {len(failures)} refused: {failures[:3]}"

    def read(self, role: str) -> list[tuple[str | None, dict, dict]]:
        """Every message written to `role` so far: (key, decoded value, headers)."""
        if self.broker.scheme == "redis":
            import redis

            client = redis.Redis(host=self.broker.host, port=self.broker.port, decode_responses=True)
            entries = client.xrange(self.name(role))
            client.close()
            return [(fields.pop("key", None), json.loads(fields.pop("value")), fields) for _, fields in entries]
        if self.broker.scheme == "nats":

            async def read():
                connection = await _nats(self.broker)
                jetstream = connection.jetstream()
                info = await jetstream.stream_info(self.name(role))
                found = []
                for sequence in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
                    message = await jetstream.get_msg(self.name(role), sequence)
                    headers = dict(message.headers or {})
                    found.append((headers.pop(KEY_HEADER, None), json.loads(message.data), headers))
                await connection.drain()
                return found

            return asyncio.run(read())
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": f"{self.broker.host}:{self.broker.port}",
                "group.id": f"reader-{self.prefix}-{id(self)}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.name(role)])
        found, idle = [], 0
        while idle < 3:
            batch = consumer.consume(1000, 1.0)
            idle = idle + 1 if not batch else 0
            for message in batch:
                if message.error():
                    continue
                headers = {name: value.decode() for name, value in message.headers() or []}
                key = message.key().decode() if message.key() is not None else None
                found.append((key, json.loads(message.value()), headers))
        consumer.close()
        return found


async def _nats(broker: Broker):
    import nats

    return await nats.connect(f"nats://{broker.host}:{broker.port}")
