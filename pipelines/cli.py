"""The one command-line entry point, ``mast``. Each subcommand lives in its own pipeline module,
which registers its parser with ``add_parser`` and sets ``handler`` (and optionally ``validate``,
run before any work starts)."""

from __future__ import annotations

import argparse
import sys

from . import cluster, demo, embed, export, ingest, pretrain, report, sweep, synth

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
    args.handler(args)


if __name__ == "__main__":
    main(sys.argv[1:])
