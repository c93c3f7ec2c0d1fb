"""`mast pretrain`: the command line of :mod:`pipelines.pretrain.driver`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pipelines.pretrain.driver as _lib
from pipelines.common.config import ConfigError, load_config
from pipelines.pretrain.driver import PretrainConfig, pretrain


def run(args: argparse.Namespace) -> None:
    try:
        config = load_config(PretrainConfig, args.config, args.set)
        pretrain(config, args.tracking_uri)
    except ConfigError as error:
        raise SystemExit(f"mast pretrain: {error}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="SS-MAST / SSAST pretraining on Ray Train",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config (see configs/pretrain/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. optim.lr=3e-4")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.set_defaults(handler=run)
