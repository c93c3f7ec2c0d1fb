"""The one command-line entry point, ``mast`` (also ``python -m pipelines``): the root parser.

Each subcommand is a module of :mod:`pipelines.commands` that registers its parser with
``add_parser`` and sets ``handler`` (and optionally ``validate``, run before any work starts).
Commands compose the library modules of ``pipelines`` and never import each other.
"""

from __future__ import annotations

import argparse

from pipelines.commands import cluster, demo, embed, export, ingest, pretrain, report, sweep, synth
from pipelines.common.runtime import RayClusterError

SUBCOMMANDS = (demo, ingest, pretrain, sweep, report, embed, export, cluster, synth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mast", description="MAST / SS-MAST: models, pretraining and evaluation")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "validate", None) is not None:
        args.validate(args)
    try:
        args.handler(args)
    except RayClusterError as error:  # before any work: the cluster to join is not there
        raise SystemExit(f"mast {args.command}: {error}") from None
