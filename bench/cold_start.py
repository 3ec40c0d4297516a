"""Cold start: a process's start to its first answer, for `modelplane serve`, `batch` and
`stream`, against a bare process that imports MLflow, loads the same model and predicts.

The iris model (MLflow format, skops) is saved once; each contender then starts as a new
process, once per round, in turn, timed by the parent from the moment it spawns it:
  - bare MLflow (the anchor): `import mlflow.pyfunc`, `load_model`, one `predict`, a line
    on stdout: the least any server built on MLflow's loader can take;
  - `modelplane serve`: until a one-row POST /invocations is answered 200;
  - `modelplane batch`: until it exits 0 with a one-row CSV scored and its output written;
  - `modelplane stream`: until the prediction of one waiting event is in the sink topic of
    a real Kafka broker (the test bed's, started once);
  - `python -c pass`, for the record: what any Python process costs here.
Prints seconds as medians with their range, and each one's ratio to the anchor. Goal:
each modelplane command <= 0.6x the anchor.

    .venv/bin/python -m bench.cold_start [--rounds 5] [--against OTHER_CHECKOUT]

`--against` times the same commands of another checkout (say, main before a change) in
the same rounds, from its source roots with this environment's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.rounds import checkout_pythonpath, interleaved, median, spread, verdict
from bench.serving_online import ROW, save_model

ANCHOR = "bare MLflow: import, load_model, predict (anchor)"
PYTHON = "python -c pass"
COMMANDS = ("serve", "batch", "stream")
BARE = """
import sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.DataFrame([{row}]))
print("predicted", flush=True)
"""
POLL_SECONDS = 0.005


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout whose commands run in the same rounds")
    args = parser.parse_args()

    from tests.testbed.brokers import start_kafka
    from tests.testbed.process import free_port

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as temporary:
        folder = Path(temporary)
        model, _ = save_model(folder)
        (folder / "in").mkdir()
        (folder / "in" / "rows.csv").write_text(",".join(ROW) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n")
        broker = start_kafka(folder / "kafka", folder / "logs", name="kafka")
        try:
            servers = f"{broker.host}:{broker.port}"
            runs = iter(range(1_000_000))
            checkouts: dict[str, Path | None] = {"modelplane": None}
            if args.against:
                checkouts[f"{args.against}"] = args.against
            contenders: dict[str, Callable[[], float]] = {
                PYTHON: lambda: _until_exit([sys.executable, "-c", "pass"], os.environ.copy()),
                ANCHOR: lambda: _until_line(
                    [sys.executable, "-c", BARE.format(row=ROW), str(model)], os.environ.copy(), "predicted"
                ),
            }
            for label, checkout in checkouts.items():
                env = _environment(folder, checkout)
                contenders[f"{label} serve"] = lambda env=env: _serve(model, env, free_port())
                contenders[f"{label} batch"] = lambda env=env: _batch(model, env, folder, next(runs))
                contenders[f"{label} stream"] = lambda env=env: _stream(model, env, servers, next(runs), free_port())
            seconds = interleaved(contenders, args.rounds)
        finally:
            broker.component.stop()

    anchor = median(seconds[ANCHOR])
    print(f"\nprocess start to first answer, {args.rounds} rounds: seconds, median (min-max)")
    for name, measured in seconds.items():
        ratio = "" if name in (ANCHOR, PYTHON) else verdict(median(measured) / anchor, 0.6, at_least=False)
        print(f"  {name:52} {spread(measured, ' s', 2):>24}  {ratio}")
    return 0


def _environment(folder: Path, checkout: Path | None) -> dict[str, str]:
    env = {**os.environ, "MODELPLANE_MODEL_CACHE": str(folder / "cache")}
    if checkout is not None:  # its source roots ahead of this checkout's
        env["PYTHONPATH"] = checkout_pythonpath(checkout)
    return env


def _modelplane(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "modelplane"), *args]


def _until_exit(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    finished = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{argv[:3]} exited {finished.returncode}:\n{finished.stderr[-3000:]}")
    return took


def _until_line(argv: list[str], env: dict[str, str], line: str) -> float:
    started = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for said in process.stdout:
            if said.strip() == line:
                took = time.perf_counter() - started
                process.wait(60)
                return took
        raise SystemExit(f"{argv[:3]} never said {line!r}:\n{process.stderr.read()[-3000:]}")  # type: ignore[union-attr]


def _serve(model: Path, env: dict[str, str], port: int) -> float:
    body = json.dumps({"dataframe_records": [ROW]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"})
    argv = _modelplane("serve", "--model", str(model), "--host", "127.0.0.1", "--port", str(port))
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None:
                raise SystemExit(f"modelplane serve exited:\n{process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            time.sleep(POLL_SECONDS)
    finally:
        process.terminate()
        process.wait(30)


def _batch(model: Path, env: dict[str, str], folder: Path, run: int) -> float:
    output = folder / f"out-{run}"
    took = _until_exit(
        _modelplane("batch", "--model", str(model), "--input", str(folder / "in"), "--output", str(output)), env
    )
    if not (output / "_SUCCESS").exists():
        raise SystemExit(f"modelplane batch wrote no _SUCCESS marker in {output}")
    return took


def _stream(model: Path, env: dict[str, str], servers: str, run: int, metrics_port: int) -> float:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    for created in admin.create_topics([NewTopic(f"in-{run}", 1, 1), NewTopic(f"out-{run}", 1, 1)]).values():
        created.result(30)
    producer = Producer({"bootstrap.servers": servers})
    producer.produce(f"in-{run}", json.dumps({"id": 0, **ROW}).encode())
    producer.flush(30)
    stream_env = {
        **env,
        "MODELPLANE_MODEL": str(model),
        "MODELPLANE_SOURCE": f"kafka://{servers}/in-{run}",
        "MODELPLANE_SINK": f"kafka://{servers}/out-{run}",
        "MODELPLANE_CONSUMER_GROUP": f"cold-{run}",
        "MODELPLANE_METRICS_HOST": "127.0.0.1",
        "MODELPLANE_METRICS_PORT": str(metrics_port),
    }
    watcher = Consumer({"bootstrap.servers": servers, "group.id": f"watcher-{run}"})
    started = time.perf_counter()
    process = subprocess.Popen(_modelplane("stream"), env=stream_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while watcher.get_watermark_offsets(TopicPartition(f"out-{run}", 0), timeout=5)[1] == 0:
            if process.poll() is not None:
                raise SystemExit(f"modelplane stream exited:\n{process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            time.sleep(POLL_SECONDS)
        return time.perf_counter() - started
    finally:
        watcher.close()
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
