"""The `modelplane` command: argument parsing and lazy imports, nothing else.

Each subcommand imports its implementation only when it runs, so the operator never
loads the serving stack and `modelplane --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from importlib.metadata import version
from pathlib import Path


def _run_demo(args: argparse.Namespace) -> int:
    return import_module("modelplane.demo").main(home=args.home)


def _run_render(args: argparse.Namespace) -> int:
    return import_module("modelplane.operator.render_command").main(
        args.file, serving_image=args.serving_image, registry_uri=args.registry, version=args.model_version,
    )


def _run_operator(args: argparse.Namespace) -> int:
    return import_module("modelplane.operator.operator_command").main(
        namespaces=args.namespace, all_namespaces=args.all_namespaces, liveness=args.liveness,
    )


def _run_serve(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for key in (
        "model", "host", "port", "model_cache", "max_batch_size", "max_batch_wait_ms", "max_body_bytes", "allow_pickle")}
    return import_module("modelplane.serving.serve").main(overrides)


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
    )
    render.add_argument("-f", "--file", type=Path, required=True, help="ModelDeployment manifest (YAML)")
    render.add_argument(
        "--serving-image",
        help="image of the serving container when the manifest sets none; default: "
             "$MODELPLANE_SERVING_IMAGE, else the image of this release",
    )
    render.add_argument("--registry", help="registry URI when the manifest sets none; default: $MLFLOW_TRACKING_URI")
    render.add_argument(
        "--version", dest="model_version",
        help="pin this model version instead of asking the registry where the alias points",
    )
    render.set_defaults(run=_run_render)

    serve = commands.add_parser(
        "serve", help="serve a registered model over HTTP (the MLflow scoring protocol)",
        description="Every flag has a MODELPLANE_* environment twin (e.g. --model-cache: MODELPLANE_MODEL_CACHE); "
                    "a flag given wins.",
    )
    serve.add_argument("--model", help="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/..., or a local path "
                                       "(registry: MLFLOW_TRACKING_URI)")
    serve.add_argument("--host", help="address to listen on; default 0.0.0.0")
    serve.add_argument("--port", type=int, help="port; default 8080")
    serve.add_argument("--model-cache", type=Path, help="download folder, reused across restarts")
    serve.add_argument("--max-batch-size", type=int, help="most requests per predict call; default 32")
    serve.add_argument("--max-batch-wait-ms", type=float, help="longest wait for a batch to fill; default 2")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body; default 16 MiB")
    serve.add_argument("--allow-pickle", action="store_true", default=None,
                       help="load model formats that unpickle (runs code from the artifact)")
    serve.set_defaults(run=_run_serve)

    operator = commands.add_parser("operator", help="run the operator (in the cluster, or against KUBECONFIG)")
    scope = operator.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append", default=[], help="a namespace to watch (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument("--liveness", help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    operator.set_defaults(run=_run_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
