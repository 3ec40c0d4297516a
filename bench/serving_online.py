"""Online serving throughput and latency against the model servers users compare us with,
and against the HTTP floor, all measured in the same rounds.

The same iris logistic-regression model (MLflow format, skops) is served in turn by
`modelplane serve` (both protocols), `mlflow models serve`, MLServer with adaptive
batching and KServe's Python model server, each from its own virtual environment (built
on first use under ~/.cache/modelplane/bench); the anchor is a raw ASGI echo on the same
uvicorn, uvloop and httptools, which reads each body and answers a fixed prediction. The
same wrk load generator drives each: one row per request, 32 connections, one server
process (or --workers N), each server once per round, in turn, for several rounds.
Prints req/s, p50 and p99 as medians with their range, and the ratios of medians. Goals:
best Modelplane req/s >= 3x the best peer's and >= 0.25x the echo's, and its p99 <= 0.5x
the best peer's, with the model signature enforced; and the same req/s and p99 with the
prediction page served as with --no-ui.

    .venv/bin/python -m bench.serving_online [--seconds 10] [--rounds 3] [--workers 1]
        [--only WORD ...] [--against OTHER_CHECKOUT]

`--against` serves the MLflow protocol with the `modelplane serve` of another checkout
(say, main before a change) in the same rounds, with this environment's packages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.rounds import checkout_pythonpath, interleaved, median, spread, verdict
from tests.testbed.process import Component, free_port

ROOT = Path(__file__).resolve().parent.parent
ENVS = Path.home() / ".cache" / "modelplane" / "bench"
ROW = {"sepal length (cm)": 5.9, "sepal width (cm)": 3.0, "petal length (cm)": 5.1, "petal width (cm)": 1.8}
# MLServer's parallel workers ask uvloop for an implicit event loop, which uvloop 0.22 dropped.
PEER_PACKAGES = {"mlserver": ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22"], "kserve": ["kserve==0.21.0"]}


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    ready_path: str
    path: str
    body: dict
    answer: callable | None  # the prediction, read from a response; None for the echo, which has no model
    peer: str | None = None  # the peer environment its argv runs in, built before it starts


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


ECHO = "raw ASGI echo (anchor)"
PAGE_ON = "modelplane (MLflow protocol)"
PAGE_OFF = "modelplane (MLflow protocol, --no-ui)"


def peer_python(peer: str) -> Path:
    """The Python of the peer's own environment, created on first use with the same
    scikit-learn and skops as ours, so every server loads the identical model."""
    import sklearn
    import skops

    python = ENVS / peer / "bin" / "python"
    stamp = ENVS / peer / ".bench-installed"
    wanted = [
        *PEER_PACKAGES[peer],
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        "mlflow-skinny",
    ]
    if not stamp.exists() or stamp.read_text() != " ".join(wanted):
        print(f"installing {peer} into {ENVS / peer} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ENVS / peer)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
        stamp.write_text(" ".join(wanted))
    return python


def save_model(folder: Path) -> tuple[Path, int]:
    """The iris model as an MLflow model folder, and what it predicts for ROW."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from modelplane.demo import iris_features

    features, labels = iris_features()
    model = LogisticRegression(max_iter=500).fit(features, labels)
    path = folder / "iris"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        signature=infer_signature(features, model.predict(features)),
        input_example=features.head(3),  # what the prediction page shows
    )
    return path, int(model.predict(pd.DataFrame([ROW]))[0])


def checkout_server(checkout: Path, ours: Server) -> Server:
    """`ours`, run from another checkout's source roots ahead of this one's."""
    pythonpath = checkout_pythonpath(checkout)
    return dataclasses.replace(
        ours, name=f"{ours.name} of {checkout}", argv=["env", f"PYTHONPATH={pythonpath}", *ours.argv]
    )


def servers(model: Path, folder: Path, port: int, workers: int) -> list[Server]:
    split = {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}
    v2_columns = [{"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in ROW.items()]
    bin_dir = Path(sys.executable).parent
    mlserver = folder / "mlserver"
    (mlserver / "iris").mkdir(parents=True)
    (mlserver / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0 if workers == 1 else workers,
            }
        )
    )
    (mlserver / "iris" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model)},
                "max_batch_size": 32,
                "max_batch_time": 0.005,
            }
        )
    )
    modelplane = [
        str(bin_dir / "modelplane"),
        *("serve", "--model", str(model), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
    ]
    return [
        Server(
            ECHO,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(Path(__file__).parent / "peers"),
                "echo:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            "/",
            "/invocations",
            split,
            None,
        ),
        Server(
            PAGE_ON,
            modelplane,
            "/readyz",
            "/invocations",
            split,
            lambda answer: answer["predictions"][0],
        ),
        Server(
            PAGE_OFF,
            [*modelplane, "--no-ui"],
            "/readyz",
            "/invocations",
            split,
            lambda answer: answer["predictions"][0],
        ),
        Server(
            "modelplane (V2)",
            modelplane,
            "/readyz",
            "/v2/models/iris/infer",
            {"inputs": v2_columns},
            lambda answer: answer["outputs"][0]["data"][0],
        ),
        Server(
            "mlflow models serve",
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workers),
            ],
            "/ping",
            "/invocations",
            split,
            lambda answer: answer["predictions"][0],
        ),
        Server(
            "MLServer 1.7 (adaptive batching)",
            [str(ENVS / "mlserver" / "bin" / "mlserver"), "start", str(mlserver)],
            "/v2/health/ready",
            "/v2/models/iris/infer",
            {"parameters": {"content_type": "pd"}, "inputs": v2_columns},
            lambda answer: answer["outputs"][0]["data"][0],
            peer="mlserver",
        ),
        Server(
            "KServe 0.21 model server",
            [
                str(ENVS / "kserve" / "bin" / "python"),
                str(Path(__file__).parent / "peers" / "kserve_iris.py"),
                "--model-dir",
                str(model),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            "/v2/health/ready",
            "/v1/models/iris:predict",
            {"instances": [list(ROW.values())]},
            lambda answer: answer["predictions"][0],
            peer="kserve",
        ),
    ]


def measure(server: Server, expected: int, port: int, seconds: int, connections: int, logs: Path) -> Result:
    url = f"http://127.0.0.1:{port}"
    # `mlflow models serve` runs `uvicorn` from PATH.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    process = Component(re.sub(r"\W+", "-", server.name).strip("-"), server.argv, logs, env={"PATH": path}).start()
    try:
        process.wait_until(
            lambda: urllib.request.urlopen(url + server.ready_path, timeout=2).status == 200, timeout=180
        )
        # Some servers say ready before every worker process has its model: wait until a
        # round of requests is answered in full.
        process.wait_until(lambda: all(_predict(url, server) is not None for _ in range(16)), timeout=180)
        answer = _predict(url, server)
        if server.answer is not None and answer != expected:
            raise SystemExit(f"{server.name} answered {answer}, not {expected}")
        script = logs / "post.lua"
        script.write_text(
            f"wrk.method = 'POST'\nwrk.body = {json.dumps(json.dumps(server.body))}\n"
            "wrk.headers['Content-Type'] = 'application/json'\n"
        )
        wrk = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", str(script), url + server.path]
        subprocess.run([*wrk[:1], "-d3s", *wrk[1:]], check=True, capture_output=True)  # warm-up
        report = subprocess.run(
            [*wrk[:1], f"-d{seconds}s", *wrk[1:]], check=True, capture_output=True, text=True
        ).stdout
    finally:
        process.stop()
    return Result(
        float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1)),
        _latency(report, "50%"),
        _latency(report, "99%"),
        int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", report)) else 0,
    )


def _predict(url: str, server: Server):
    """The server's answer to the benchmark's request, or None when it refused it."""
    request = urllib.request.Request(
        url + server.path, data=json.dumps(server.body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        answer = json.load(urllib.request.urlopen(request, timeout=10))
        return server.answer(answer) if server.answer is not None else answer
    except urllib.error.HTTPError:
        return None


def _latency(report: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", report, re.MULTILINE).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", nargs="+", help="measure only the servers whose names start with these words")
    parser.add_argument("--against", type=Path, help="another checkout whose modelplane serve runs in the same rounds")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark drives the servers with wrk, which is not installed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="bench-online-") as temporary:
        folder = Path(temporary)
        model, expected = save_model(folder)
        port = free_port()
        every = servers(model, folder, port, args.workers)
        chosen = [server for server in every if not args.only or any(server.name.startswith(w) for w in args.only)]
        if args.against:
            chosen.append(checkout_server(args.against, next(s for s in every if s.name == PAGE_ON)))
        for server in chosen:
            if server.peer is not None:
                peer_python(server.peer)
        results = interleaved(
            {
                server.name: (
                    lambda server=server: measure(server, expected, port, args.seconds, args.connections, folder)
                )
                for server in chosen
            },
            args.rounds,
        )

    print(
        f"\n{args.connections} connections, {args.workers} worker(s), one row per request, {args.seconds} s each, "
        f"{args.rounds} rounds: median (min-max)"
    )
    print(f"{'server':34} {'req/s':>22} {'p50 ms':>18} {'p99 ms':>20} {'errors':>7}")
    for name, measured in results.items():
        print(
            f"{name:34} {spread([r.requests_per_second for r in measured]):>22} "
            f"{spread([r.p50_ms for r in measured], digits=2):>18} "
            f"{spread([r.p99_ms for r in measured], digits=2):>20} {sum(r.errors for r in measured):7d}"
        )

    def rate(name: str) -> float:
        return median([r.requests_per_second for r in results[name]])

    def p99(name: str) -> float:
        return median([r.p99_ms for r in results[name]])

    ours = [name for name in results if name.startswith("modelplane")]
    peers = [name for name in results if name != ECHO and name not in ours]
    if not ours:
        return 0
    if PAGE_ON in results and PAGE_OFF in results:
        # The prediction page is served beside the scoring routes: it must cost them nothing.
        print(
            f"\nwith the page / without: req/s x{rate(PAGE_ON) / rate(PAGE_OFF):.2f}, "
            f"p99 x{p99(PAGE_ON) / p99(PAGE_OFF):.2f}"
        )
    best = max(ours, key=rate)
    print(f"\nbest Modelplane: {best}")
    if ECHO in results:
        print(f"  req/s / the echo's: {verdict(rate(best) / rate(ECHO), 0.25)}")
    if peers:
        peer = max(peers, key=rate)
        print(f"  req/s / the best peer's ({peer}): {verdict(rate(best) / rate(peer), 3)}")
        print(f"  p99 / the best peer's: {verdict(p99(best) / p99(peer), 0.5, at_least=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
