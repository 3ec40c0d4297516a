"""The `modelplane` command: argument parsing and lazy imports, nothing else.

Each subcommand imports its implementation only when it runs, so the operator never
loads the serving stack and `modelplane --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

from modelplane.contract import STREAM_URL_FORMS, Command, DataFormat


def _main(module: str) -> Callable[..., int]:
    """The `main` of a subcommand's module, which returns the exit code."""
    main: Callable[..., int] = import_module(module).main
    return main


def _run_demo(args: argparse.Namespace) -> int:
    return _main("modelplane.demo")(home=args.home)


def _run_local(args: argparse.Namespace) -> int:
    return _main("modelplane.local_run")(
        args.file, registry=args.registry, port=args.port, follow=args.follow, drop_unsafe_env=args.drop_unsafe_env
    )


def _run_render(args: argparse.Namespace) -> int:
    return _main("modelplane.operator.render_command")(
        args.file,
        serving_image=args.serving_image,
        registry_uri=args.registry,
        version=args.model_version,
    )


def _run_operator(args: argparse.Namespace) -> int:
    return _main("modelplane.operator.operator_command")(
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces,
        liveness=args.liveness,
    )


def _run_serve(args: argparse.Namespace) -> int:
    overrides = {
        key: getattr(args, key)
        for key in (
            "model",
            "host",
            "port",
            "workers",
            "model_cache",
            "max_batch_size",
            "max_batch_wait_ms",
            "max_body_bytes",
            "ui",
            "allow_pickle",
            "strict_deps",
        )
    }
    return _main("modelplane.serving.serve_command")(overrides)


def _run_batch(args: argparse.Namespace) -> int:
    overrides = {
        key: getattr(args, key)
        for key in (
            "model",
            "input",
            "output",
            "format",
            "id_column",
            "shard_index",
            "shard_count",
            "only_new",
            "chunk_rows",
            "model_cache",
            "allow_pickle",
            "strict_deps",
        )
    }
    return _main("modelplane.serving.batch_command")(overrides)


def _run_stream(args: argparse.Namespace) -> int:
    overrides = {
        key: getattr(args, key)
        for key in (
            "model",
            "source",
            "sink",
            "dead_letter",
            "consumer_group",
            "consumer_name",
            "batch_size",
            "batch_wait_ms",
            "max_attempts",
            "metrics_host",
            "metrics_port",
            "model_cache",
            "allow_pickle",
            "strict_deps",
        )
    }
    return _main("modelplane.serving.stream_command")(overrides)


def _model_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--model",
        help="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/..., or a local path (registry: MLFLOW_TRACKING_URI)",
    )
    command.add_argument("--model-cache", type=Path, help="download folder, reused across restarts")
    command.add_argument(
        "--allow-pickle",
        action="store_true",
        default=None,
        help="load model formats that unpickle (runs code from the artifact)",
    )
    command.add_argument(
        "--strict-deps",
        action="store_true",
        default=None,
        help="refuse to start when a package the model requires is not installed",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplane", description="Put registered MLflow models into production.")
    parser.add_argument("--version", action="version", version=f"modelplane {version('modelplane')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="register a small model in a local registry, serve it and print a prediction (no cluster needed)",
    )
    demo.add_argument(
        "--home",
        default=".modelplane",
        help="folder for the local registry (SQLite database and artifacts); default: %(default)s",
    )
    demo.set_defaults(run=_run_demo)

    render = commands.add_parser(
        "render",
        help="print the Kubernetes objects the operator makes of a ModelDeployment manifest",
        description="Prints the Kubernetes objects the operator makes of a ModelDeployment manifest, with the "
        "operator's settings taken from the same variables it reads (MODELPLANE_WORKLOAD_RESOURCES, "
        "MODELPLANE_NETWORK_POLICY: the chart's workloads.resources and networkPolicy, as JSON).",
    )
    render.add_argument("-f", "--file", type=Path, required=True, help="ModelDeployment manifest (YAML)")
    render.add_argument(
        "--serving-image",
        help="image of the serving container when the manifest sets none; default: "
        "$MODELPLANE_SERVING_IMAGE, else the image of this release",
    )
    render.add_argument("--registry", help="registry URI when the manifest sets none; default: $MLFLOW_TRACKING_URI")
    render.add_argument(
        "--version",
        dest="model_version",
        help="pin this model version instead of asking the registry where the alias points",
    )
    render.set_defaults(run=_run_render)

    run = commands.add_parser(
        "run",
        help="run a ModelDeployment manifest as local processes (no cluster needed)",
        description="Validates the manifest with the CRD's rules, renders it as the operator does, and runs the "
        "workload's command and environment here. Ctrl-C stops it.",
    )
    run.add_argument("-f", "--file", type=Path, required=True, help="ModelDeployment manifest (YAML)")
    run.add_argument(
        "--registry",
        help="registry URI when the manifest sets none; default: $MLFLOW_TRACKING_URI, "
        "else the local registry of `modelplane demo`",
    )
    run.add_argument("--port", type=int, help="online: the local port; default: spec.online.port")
    run.add_argument(
        "--follow", action="store_true", help="batch: keep running on spec.batch.schedule instead of once now"
    )
    run.add_argument(
        "--drop-unsafe-env",
        action="store_true",
        help="leave out, with a warning, spec.env variables that would make programs here run code "
        "(PYTHON*, LD_*, BROWSER, ...) instead of refusing the manifest",
    )
    run.set_defaults(run=_run_local)

    serve = commands.add_parser(
        Command.serve.value,
        help="serve a registered model over HTTP (the MLflow scoring protocol)",
        description="Every flag has a MODELPLANE_* environment twin (e.g. --model-cache: MODELPLANE_MODEL_CACHE); "
        "a flag given wins.",
    )
    _model_flags(serve)
    serve.add_argument("--host", help="address to listen on; default 0.0.0.0")
    serve.add_argument("--port", type=int, help="port; default 8080")
    serve.add_argument(
        "--workers", help="server processes: a number, or auto for one per CPU of the container's quota; default 1"
    )
    serve.add_argument("--max-batch-size", type=int, help="most requests per predict call; default 32")
    serve.add_argument("--max-batch-wait-ms", type=float, help="longest wait for a batch to fill; default 2")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body; default 16 MiB")
    serve.add_argument(
        "--no-ui",
        dest="ui",
        action="store_false",
        default=None,
        help="serve no prediction page at / and no API page at /docs (the OpenAPI document stays)",
    )
    serve.set_defaults(run=_run_serve)

    batch = commands.add_parser(
        Command.batch.value,
        help="score files with a registered model, writing the predictions beside an id column",
        description="Every flag has a MODELPLANE_* environment twin; --shard-index defaults from "
        "JOB_COMPLETION_INDEX (an Indexed Job's pod index).",
    )
    _model_flags(batch)
    batch.add_argument("--input", help="file, folder or glob to score; a local path or any fsspec URL")
    batch.add_argument("--output", help="folder for the predictions (written atomically, then a _SUCCESS marker)")
    batch.add_argument(
        "--format", choices=[format.value for format in DataFormat], help="output format; default parquet"
    )
    batch.add_argument("--id-column", help="input column written beside each prediction; default: the row number")
    batch.add_argument("--shard-index", type=int, help="this process's shard, from 0")
    batch.add_argument("--shard-count", type=int, help="processes splitting the input; default 1")
    batch.add_argument(
        "--only-new", action="store_true", default=None, help="score only input files no earlier run has scored"
    )
    batch.add_argument("--chunk-rows", type=int, help="rows scored at a time (bounds memory); default 65536")
    batch.set_defaults(run=_run_batch)

    stream = commands.add_parser(
        Command.stream.value,
        help="score the events of a Kafka topic, Redis stream or NATS subject, writing predictions to another",
        description="Every flag has a MODELPLANE_* environment twin. Events are acknowledged only after their "
        "predictions are confirmed by the sink (at least once); SIGTERM drains and exits 0.",
    )
    _model_flags(stream)
    stream.add_argument("--source", help=STREAM_URL_FORMS)
    stream.add_argument("--sink", help="where predictions go, a URL of the same forms")
    stream.add_argument("--dead-letter", help="where events that cannot be scored go, with the error")
    stream.add_argument("--consumer-group", help="group shared by every replica; default modelplane")
    stream.add_argument("--consumer-name", help="this consumer in its group (Redis); default: the host name")
    stream.add_argument("--batch-size", type=int, help="most events per predict call; default 256")
    stream.add_argument("--batch-wait-ms", type=float, help="longest wait for events when idle; default 50")
    stream.add_argument("--max-attempts", type=int, help="tries of a failing event before its dead letter; default 3")
    stream.add_argument("--metrics-host", help="address of /metrics, /healthz, /readyz; default 0.0.0.0")
    stream.add_argument("--metrics-port", type=int, help="port of /metrics, /healthz, /readyz; default 9090")
    stream.set_defaults(run=_run_stream)

    operator = commands.add_parser("operator", help="run the operator (in the cluster, or against KUBECONFIG)")
    scope = operator.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append", default=[], help="a namespace to watch (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument("--liveness", help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    operator.set_defaults(run=_run_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
