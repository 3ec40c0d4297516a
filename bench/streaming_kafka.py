"""Streaming throughput on Kafka: one `modelplane stream` process against a raw
consume + decode + produce + commit loop on the same topic and broker, in interleaved rounds.

N small JSON events (one iris record each, with an id) wait in a topic of a real Kafka
broker (the test bed's, from Maven Central's jars). Each round reads them all twice, each
time in a consumer group of its own, writing to a topic of its own:
  - the raw loop (the anchor): confluent-kafka consuming in batches, decoding each value
    and producing an answer of its id to another topic, then flushing and committing
    synchronously per batch: the transport's ceiling with the bound modelplane keeps (at
    most one batch repeated after a kill);
  - `modelplane stream`: a whole process, timed from its first prediction to its last.
Raw decode + predict of the same records in-process, with no transport, is timed too
(the model's ceiling). The rounds run on two brokers in turn: the test bed's, which
answers offset commits at once (`group.coordinator.append.linger.ms=0`), and one with
Kafka's default settings, whose group coordinator holds each commit up to 5 ms to batch
it with others. Prints events/s as medians with their range. Goal: modelplane >= 0.7x the
raw loop's events/s on each broker.

    .venv/bin/python -m bench.streaming_kafka [--events 200000] [--batch-size 1000] [--rounds 3]
        [--against OTHER_CHECKOUT]

`--against` measures the `modelplane stream` of another checkout (say, main before a
change) in the same rounds, with this environment's packages.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.rounds import checkout_pythonpath, interleaved, median, spread, verdict
from bench.serving_online import save_model

AGAINST = "modelplane stream of the other checkout"
RAW = "raw consume + decode + produce + commit (anchor)"
OURS = "modelplane stream, whole process"
BROKERS = {"test bed's broker (commits answered at once)": True, "Kafka's default settings": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout whose modelplane stream runs in the same rounds")
    args = parser.parse_args()

    from modelplane.demo import iris_features

    rows = iris_features()[0].to_dict(orient="records")
    values = [json.dumps({"id": n, **rows[n % len(rows)]}).encode() for n in range(args.events)]
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as temporary:
        folder = Path(temporary)
        model_path, _ = save_model(folder)
        predict_seconds = [_raw_predict(model_path, values, args.batch_size) for _ in range(args.rounds)]
        for number, (broker_name, tuned) in enumerate(BROKERS.items()):
            results[broker_name] = _rounds_on_broker(folder / f"kafka-{number}", tuned, model_path, values, args)

    print(f"\n{args.events:,} events, batches of {args.batch_size}, {args.rounds} rounds: events/s, median (min-max)")
    predict_rates = [args.events / s for s in predict_seconds]
    print(f"  {'raw decode + predict, no transport':52} {spread(predict_rates):>28}")
    for broker_name, rates in results.items():
        print(broker_name)
        for name, measured in rates.items():
            print(f"  {name:52} {spread(measured):>28}")
        ratio = median(rates[OURS]) / median(rates[RAW])
        print(f"  modelplane / the raw loop: {verdict(ratio, 0.7)}")
        if args.against:
            print(f"  {args.against} / the raw loop: x{median(rates[AGAINST]) / median(rates[RAW]):.2f}")
        print(f"  modelplane / raw predict: x{median(rates[OURS]) / median(predict_rates):.2f}")
    return 0


def _rounds_on_broker(
    root: Path, tuned: bool, model_path: Path, values: list[bytes], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Events/s of the raw loop and of modelplane, in interleaved rounds on one broker."""
    from tests.testbed.brokers import start_kafka

    broker = start_kafka(root, root.parent / "logs", name=root.name, tuned=tuned)
    try:
        servers = f"{broker.host}:{broker.port}"
        _fill(servers, values, args.rounds)
        run = itertools.count()
        contenders = {
            RAW: lambda: _raw_loop(servers, next(run), args.events, args.batch_size),
            OURS: lambda: _modelplane_stream(model_path, servers, root.parent, next(run), args.events, args.batch_size),
        }
        if args.against:
            contenders[AGAINST] = lambda: _modelplane_stream(
                model_path, servers, root.parent, next(run), args.events, args.batch_size, args.against
            )
        seconds = interleaved(contenders, args.rounds)
    finally:
        broker.component.stop()
    return {name: [args.events / took for took in measured] for name, measured in seconds.items()}


def _fill(servers: str, values: list[bytes], rounds: int) -> None:
    """The input topic, and an output topic for every run of every round."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    names = ["in", *(f"out-{run}" for run in range(3 * rounds))]
    admin = AdminClient({"bootstrap.servers": servers})  # kept until the topics exist: its end cancels them
    for created in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        created.result(30)
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20})
    for n, value in enumerate(values):
        while True:
            try:
                producer.produce("in", value, str(n).encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def _raw_loop(servers: str, run: int, events: int, batch: int) -> float:
    import orjson
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"raw-{run}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
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
            record = orjson.loads(message.value())
            producer.produce(f"out-{run}", orjson.dumps({"id": record["id"], "prediction": 0}), message.key())
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


def _modelplane_stream(
    model_path: Path, servers: str, folder: Path, run: int, events: int, batch: int, checkout: Path | None = None
) -> float:
    from confluent_kafka import Consumer, TopicPartition

    from tests.testbed.process import free_port

    port = free_port()
    env = {
        **os.environ,
        "MODELPLANE_MODEL": str(model_path),
        "MODELPLANE_SOURCE": f"kafka://{servers}/in",
        "MODELPLANE_SINK": f"kafka://{servers}/out-{run}",
        "MODELPLANE_CONSUMER_GROUP": f"modelplane-{run}",
        "MODELPLANE_BATCH_SIZE": str(batch),
        "MODELPLANE_METRICS_HOST": "127.0.0.1",
        "MODELPLANE_METRICS_PORT": str(port),
        "MODELPLANE_MODEL_CACHE": str(folder / "cache"),
    }
    if checkout is not None:  # its source roots ahead of this checkout's
        env["PYTHONPATH"] = checkout_pythonpath(checkout)
    with (folder / f"stream-{run}.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "modelplane"), "stream"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    watcher = Consumer({"bootstrap.servers": servers, "group.id": f"watcher-{run}"})
    try:
        while not _ready(port):
            if process.poll() is not None:
                raise SystemExit(f"modelplane stream exited: {(folder / f'stream-{run}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        # Timed like the raw loop, from the first batch: joining the group is not throughput.
        while watcher.get_watermark_offsets(TopicPartition(f"out-{run}", 0), timeout=5)[1] == 0:
            time.sleep(0.005)
        started = time.perf_counter()
        while watcher.get_watermark_offsets(TopicPartition(f"out-{run}", 0), timeout=5)[1] < events:
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
