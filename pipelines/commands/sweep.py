"""`mast sweep`: the command line of :mod:`pipelines.evaluation.sweep`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pipelines.evaluation.sweep as _lib
from pipelines.common import storage
from pipelines.common.checkpoints import resolve_encoder
from pipelines.common.config import ConfigError
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.sweep import run_sweep
from pipelines.evaluation.tasks import load_task, task_names


def run(args: argparse.Namespace) -> None:
    args.storage = args.storage or storage.join(os.environ.get("MAST_STORAGE") or "runs", "sweeps")
    try:
        names = task_names() if args.all else [args.task]
        if not args.all and args.task is None:
            raise ConfigError("give a TASK or --all")
        if args.all and args.task is not None:
            raise ConfigError(f"give a TASK or --all, not both (got {args.task!r} and --all)")
        jobs = []
        for name in names:
            task = load_task(name, data_root=args.data_root)
            if args.all and not storage.is_file(storage.join(task.shards, "manifest.json")):
                print(f"[sweep] skipping {name}: no shards at {task.shards}", file=sys.stderr)
                continue
            jobs.append((task, load_space(task.name, args.space, args.protocol)))
        storage.check_location(args.storage, "--storage")  # reached once before the encoder is put there
        encoder = resolve_encoder(args.checkpoint, args.storage, args.tracking_uri)
        for task, space in jobs:
            run_sweep(
                task,
                encoder,
                space,
                protocol=args.protocol,
                storage=args.storage,
                tracking_uri=args.tracking_uri,
                resume=args.resume,
                label=args.label,
            )
    except (ConfigError, storage.StorageError) as error:
        raise SystemExit(f"mast sweep: {error}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="Ray Tune sweep of downstream evaluation",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", nargs="?", help=f"one of: {', '.join(task_names())}")
    parser.add_argument("--all", action="store_true", help="every task whose shards exist")
    parser.add_argument(
        "--checkpoint", required=True, help="exported encoder folder, MLflow run id or runs:/ URI, random:ARCH or imagenet:ARCH:TIMM_FILE"
    )
    parser.add_argument(
        "--space", type=Path, default=None, help="search space YAML (default tune_spaces/TASK.yaml, tune_spaces/finetune/TASK.yaml)"
    )
    parser.add_argument("--protocol", choices=("linear", "finetune"), default="linear")
    parser.add_argument(
        "--storage",
        default=None,
        help="Ray Tune storage: a folder or a URI such as s3://bucket/sweeps (default $MAST_STORAGE/sweeps, else runs/sweeps)",
    )
    parser.add_argument(
        "--data-root", default=None, help="where relative task shards live (default $MAST_DATA_ROOT, else here), e.g. s3://bucket"
    )
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep (Tuner.restore)")
    parser.add_argument("--label", default=None, help="row name in `mast report`, e.g. 'MAST IN+SS-MAST' (default: arch and folder)")
    parser.set_defaults(handler=run)
