"""NATS JetStream: a durable pull consumer on a stream, messages acknowledged one by one.

The subject's stream must exist (streams are infrastructure, like Kafka topics). Every
fetched message is acknowledged after its prediction or dead letter is stored, so the
consumer never sits at MaxAckPending with messages it forgot; a message of a consumer
that died is delivered again after `ack_wait` seconds (URL option, default 30).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import nats
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from modelplane.contract import StreamAddress
from modelplane.serving.stream.messages import Event, Outgoing

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

KEY_HEADER = "Modelplane-Key"


def _server(address: StreamAddress) -> str:
    return f"nats://{address.server}"


class NatsSource:
    def __init__(self, address: StreamAddress, group: str):
        if "stream" not in address.options:
            raise ValueError(f"{address.url}: name the JetStream stream of the subject, as ?stream=NAME")
        self.address, self.subject, self.stream = address, address.name, address.options["stream"]
        # Durable names may not hold dots; the default group name (namespace.name) does.
        self.durable = address.options.get("durable", group).replace(".", "-")
        self.ack_wait = float(address.options.get("ack_wait", 30))
        self.connection: Client | None = None
        self.subscription: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        self.connection = await nats.connect(_server(self.address))
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.subject,
            max_ack_pending=-1,
        )
        self.subscription = await self.connection.jetstream().pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )

    async def fetch(self, max_count: int, wait_seconds: float) -> list[Event]:
        assert self.subscription is not None, "fetch before start"
        try:
            fetched = await self.subscription.fetch(max_count, timeout=max(wait_seconds, 0.01))
        except TimeoutError:  # nats-py's own, or asyncio's from deeper in a fetch: nothing came
            return []
        events = []
        for message in fetched:
            headers = {name.lower(): value for name, value in (message.headers or {}).items()}
            key = headers.get(KEY_HEADER.lower())
            events.append(
                Event(
                    value=message.data,
                    key=key.encode() if key is not None else None,
                    content_type=headers.get("content-type"),
                    receipt=message,
                    origin={
                        "stream": self.stream,
                        "subject": message.subject,
                        "sequence": message.metadata.sequence.stream,
                    },
                    attempts=message.metadata.num_delivered - 1,
                    written_at=message.metadata.timestamp.timestamp(),
                )
            )
        return events

    async def ack(self, events: list[Event]) -> None:
        assert self.connection is not None, "ack before start"
        await asyncio.gather(*(cast("Msg", event.receipt).ack() for event in events))
        await self.connection.flush()

    async def lag(self) -> int | None:
        assert self.connection is not None, "lag before start"
        # nats-py leaves consumer_info's return unannotated.
        info = cast(ConsumerInfo, await self.connection.jetstream().consumer_info(self.stream, self.durable))
        return info.num_pending

    async def close(self) -> None:
        if self.connection is not None:
            # Acknowledgements and publishes are already flushed; draining a pull
            # subscription would wait for a fetch that never comes.
            await self.connection.flush()
            await self.connection.close()


class NatsSink:
    def __init__(self, address: StreamAddress):
        self.address, self.subject = address, address.name
        self.connection: Client | None = None

    async def start(self) -> None:
        self.connection = await nats.connect(_server(self.address))

    async def send(self, messages: list[Outgoing]) -> None:
        assert self.connection is not None, "send before start"
        jetstream = self.connection.jetstream()
        # Each publish waits for the stream's acknowledgement: stored, not just sent.
        await asyncio.gather(
            *(
                jetstream.publish(
                    self.subject,
                    message.value,
                    headers={
                        **message.headers,
                        **({KEY_HEADER: message.key.decode()} if message.key is not None else {}),
                    },
                )
                for message in messages
            )
        )

    async def close(self) -> None:
        if self.connection is not None:
            # Acknowledgements and publishes are already flushed; draining a pull
            # subscription would wait for a fetch that never comes.
            await self.connection.flush()
            await self.connection.close()
