"""Streaming throughput on Kafka: one `modelplane stream` process against a raw
consume + produce loop and raw predict on the same records.

N small JSON events (one iris record each, with an id) wait in a topic of a real Kafka
broker (the test bed's, from Maven Central's jars). Three runs read them all:
  - raw Kafka: confluent-kafka consuming in batches, producing each value to another topic,
    flushing and committing per batch, no decoding (the ceiling of the transport);
  - raw predict: the same records decoded and scored in-process in batches of the same size,
    no transport (the ceiling of the model);
  - `modelplane stream`: a whole process, timed from its first prediction to its last.
Goal: >= 50,000 events/s for one consumer process.

The broker answers offset commits at once (`group.coordinator.append.linger.ms=0`, see
tests/testbed/brokers.py). With Kafka's default of 5 ms, every batch's synchronous commit,
which the at-most-one-batch-repeated bound requires, waits about 5 ms more: measured here,
about 15 % fewer events/s.

    .venv/bin/python -m bench.streaming_kafka [--events 200000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.serving_online import save_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from modelplane.demo import iris_features
    from tests.testbed.brokers import start_kafka
    from tests.testbed.process import free_port

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as temporary:
        folder = Path(temporary)
        broker = start_kafka(folder / "kafka", folder / "logs")
        servers = f"{broker.host}:{broker.port}"
        try:
            admin = AdminClient({"bootstrap.servers": servers})
            for created in admin.create_topics([NewTopic(name, 1, 1) for name in ("in", "raw-out", "out")]).values():
                created.result(30)
            rows = iris_features()[0].to_dict(orient="records")
            values = [json.dumps({"id": n, **rows[n % len(rows)]}).encode() for n in range(args.events)]
            producer = Producer({"bootstrap.servers": servers, "linger.ms": 20})
            for n, value in enumerate(values):
                while True:
                    try:
                        producer.produce("in", value, str(n).encode())
                        break
                    except BufferError:
                        producer.poll(0.1)
            producer.flush(60)
            print(f"{args.events:,} events of {len(values[0])} bytes in topic 'in'", flush=True)

            raw_kafka = _raw_kafka(Consumer, Producer, TopicPartition, servers, args.events, args.batch_size)
            model_path, _ = save_model(folder)
            raw_predict = _raw_predict(model_path, values, args.batch_size)
            stream = _modelplane_stream(model_path, servers, folder, free_port(), args.events, args.batch_size)
        finally:
            broker.component.stop()

    for label, seconds in (
        ("raw Kafka consume + produce (anchor)", raw_kafka),
        ("raw decode + predict (anchor)", raw_predict),
        ("modelplane stream, whole process", stream),
    ):
        print(f"{label:40} {args.events / seconds:12,.0f} events/s  {seconds:6.2f} s")
    print(
        f"\nmodelplane / raw Kafka: {raw_kafka / stream:.2f}; modelplane / raw predict: {raw_predict / stream:.2f}; "
        f"goal >= 50,000 events/s: {'met' if args.events / stream >= 50_000 else 'not met'}"
    )
    return 0


def _raw_kafka(Consumer, Producer, TopicPartition, servers: str, events: int, batch: int) -> float:
    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": "raw", "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    consumer.subscribe(["in"])
    seen, started = 0, None
    while seen < events:
        messages = [m for m in consumer.consume(batch, 1.0) if not m.error()]
        if not messages:
            continue
        started = started or time.perf_counter()
        for message in messages:
            producer.produce("raw-out", message.value(), message.key())
        producer.flush(60)
        last = messages[-1]
        consumer.commit(offsets=[TopicPartition("in", last.partition(), last.offset() + 1)], asynchronous=False)
        seen += len(messages)
    took = time.perf_counter() - started
    consumer.close()
    return took


def _raw_predict(model_path: Path, values: list[bytes], batch: int) -> float:
    import mlflow.pyfunc
    import orjson
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(str(model_path))
    started = time.perf_counter()
    for start in range(0, len(values), batch):
        records = [orjson.loads(value) for value in values[start : start + batch]]
        pyfunc.predict(pd.DataFrame([{k: v for k, v in r.items() if k != "id"} for r in records]))
    return time.perf_counter() - started


def _modelplane_stream(model_path: Path, servers: str, folder: Path, port: int, events: int, batch: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    env = {
        **os.environ,
        "MODELPLANE_MODEL": str(model_path),
        "MODELPLANE_SOURCE": f"kafka://{servers}/in",
        "MODELPLANE_SINK": f"kafka://{servers}/out",
        "MODELPLANE_CONSUMER_GROUP": "modelplane",
        "MODELPLANE_BATCH_SIZE": str(batch),
        "MODELPLANE_METRICS_HOST": "127.0.0.1",
        "MODELPLANE_METRICS_PORT": str(port),
        "MODELPLANE_MODEL_CACHE": str(folder / "cache"),
    }
    with (folder / "stream.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "modelplane"), "stream"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    watcher = Consumer({"bootstrap.servers": servers, "group.id": "watcher"})
    try:
        while not _ready(port):
            if process.poll() is not None:
                raise SystemExit(f"modelplane stream exited: {(folder / 'stream.log').read_text()[-2000:]}")
            time.sleep(0.05)
        # Timed like the raw loop, from the first batch: joining the group is not throughput.
        while watcher.get_watermark_offsets(TopicPartition("out", 0), timeout=5)[1] == 0:
            time.sleep(0.005)
        started = time.perf_counter()
        while watcher.get_watermark_offsets(TopicPartition("out", 0), timeout=5)[1] < events:
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        watcher.close()
        process.terminate()
        process.wait(30)


def _ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
