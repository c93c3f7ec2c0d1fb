"""`mast ingest`: the command line of :mod:`pipelines.data.ingest`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pipelines.data.ingest as _lib
from pipelines.common import storage
from pipelines.data.ingest import _OPTION_FLAGS, IngestError, IngestSettings, ingest
from pipelines.data.layouts import DATASETS, LayoutError


def run(args: argparse.Namespace) -> None:

    options = {key: getattr(args, key) for key in _OPTION_FLAGS if getattr(args, key) is not None}
    if "segments" in options:
        options["segments"] = tuple(part.strip() for part in options["segments"].split(",") if part.strip())
    settings = IngestSettings(shard_mb=args.shard_mb, max_seconds=args.max_seconds, stats_clips_per_shard=args.stats_clips)
    try:
        settings.validate()
        if args.num_cpus is not None and args.num_cpus < 1:
            raise IngestError(f"--num-cpus must be >= 1, got {args.num_cpus}")
        if not Path(args.root).is_dir():
            raise LayoutError(f"--root {args.root}: not a folder")
        storage.check_location(args.out, "--out")  # a bucket that is not there fails before Ray starts
        report = ingest(args.dataset, args.root, args.out, options, settings, overwrite=args.overwrite, num_cpus=args.num_cpus)
    except (LayoutError, IngestError, storage.StorageError) as error:
        raise SystemExit(f"mast ingest: {error}") from None
    print(f"[ingest] {report.summary()}")
    reasons = report.manifest["skipped_by_reason"]
    if reasons:
        print("[ingest] skipped: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items()))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="turn a dataset in its published layout into Parquet shards",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=sorted(DATASETS), help="which layout --root holds")
    parser.add_argument("--root", required=True, help="the dataset folder, as published")
    parser.add_argument("--out", required=True, help="output folder or URI (s3://bucket/prefix, gs://...) for shards and manifest.json")
    for key, (flag, kind, text) in _OPTION_FLAGS.items():
        if kind is bool:  # a switch: present or not
            parser.add_argument(flag, dest=key, action="store_true", default=None, help=text)
        else:
            parser.add_argument(flag, dest=key, type=kind, default=None, help=text)
    parser.add_argument("--shard-mb", type=float, default=192.0, help="target shard size in MB of FLAC (default 192)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="skip clips longer than this (default 600)")
    parser.add_argument("--stats-clips", type=int, default=32, help="clips per shard for normalisation stats (default 32)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray (default: max(cores, 4))")
    parser.add_argument("--overwrite", action="store_true", help="replace a different earlier ingest in --out")
    parser.set_defaults(handler=run)
