"""The `modelplane` command: argument parsing and lazy imports, nothing else.

Each subcommand imports its implementation only when it runs, so the operator never
loads the serving stack and `modelplane --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from importlib.metadata import version


def _run_demo(args: argparse.Namespace) -> int:
    return import_module("modelplane.demo").main(home=args.home)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplane", description="Put registered MLflow models into production.")
    parser.add_argument("--version", action="version", version=f"modelplane {version('modelplane')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="register a small model in a local registry and score with it (no cluster needed)",
    )
    demo.add_argument(
        "--home",
        default=".modelplane",
        help="folder for the local registry (SQLite database and artifacts); default: %(default)s",
    )
    demo.set_defaults(run=_run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
