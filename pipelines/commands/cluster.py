"""`mast check-cluster`: the command line of :mod:`pipelines.cluster`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pipelines.cluster as _lib
from pipelines.cluster import ClusterConfigError, cluster_environment, validate_cluster_config


def run(args: argparse.Namespace) -> None:
    try:
        prepared = validate_cluster_config(args.path, args.job or None)
    except ClusterConfigError as error:
        raise SystemExit(f"mast check-cluster: {error}") from None
    types = ", ".join(
        f"{name} ({node['node_config'].get('InstanceType', '?')}, {node.get('min_workers', 0)}-{node.get('max_workers', 0)})"
        for name, node in prepared["available_node_types"].items()
    )
    print(f"{args.path}: valid. node types: {types}; head: {prepared['head_node_type']}")
    env = cluster_environment(prepared)
    print(f"  token authentication on; runs in {env['MAST_STORAGE'][0]}" if "MAST_STORAGE" in env else "  token authentication on")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-cluster",
        help="validate a cluster.yaml offline",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", nargs="?", type=Path, default=Path("cluster.yaml"))
    parser.add_argument(
        "--job",
        action="append",
        type=Path,
        metavar="CONFIG",
        help="a pretraining config the cluster will run, checked with its environment (repeatable; default configs/pretrain/paper.yaml)",
    )
    parser.set_defaults(handler=run)
