"""`mast embed`: the command line of :mod:`pipelines.serving.embed`."""

from __future__ import annotations

import argparse
from collections import Counter

import torch

import pipelines.serving.embed as _lib
from mast_core.checkpoint import CheckpointError
from mast_core.embed import Embedder
from pipelines.common import storage
from pipelines.common.checkpoints import checkpoint_source
from pipelines.serving.embed import EmbedInputError, embed_files, expand_inputs


def validate(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise SystemExit("mast embed: --batch-size must be >= 1")
    if args.workers < 1:
        raise SystemExit("mast embed: --workers must be >= 1")
    if args.window_seconds is not None and args.window_seconds <= 0:
        raise SystemExit("mast embed: --window-seconds must be > 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("mast embed: --device cuda, but no CUDA device is available")
    try:
        args.files = expand_inputs(args.audio)
        storage.check_location(args.out, "--out")
    except (EmbedInputError, storage.StorageError) as error:
        raise SystemExit(f"mast embed: {error}") from None


def run(args: argparse.Namespace) -> None:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    source, tracking = checkpoint_source(args.checkpoint, args.tracking_uri)
    try:
        embedder = Embedder.from_checkpoint(source, device=device, tracking_uri=tracking, batch_size=args.batch_size)
    except CheckpointError as error:
        raise SystemExit(f"mast embed: --checkpoint {args.checkpoint}: {error}") from None
    if args.window_seconds is not None:
        frames = int(round(args.window_seconds * embedder.sample_rate / embedder.frame_hop))
        try:
            embedder = Embedder(embedder.model, embedder.features, batch_size=args.batch_size, window_frames=frames, device=device)
        except ValueError as error:
            raise SystemExit(f"mast embed: --window-seconds {args.window_seconds}: {error}") from None
    print(
        f"[embed] {len(args.files)} files with {embedder.model.arch} ({embedder.embedding_size}-d) from {source} "
        f"on {device}, batches of {args.batch_size} windows of up to {embedder.window_frames} frames",
        flush=True,
    )
    summary = embed_files(
        args.files,
        embedder,
        args.out,
        frames=args.frames,
        workers=args.workers,
        checkpoint=source,
    )
    reasons = Counter(item["reason"] for item in summary["skipped"])
    detail = f" ({', '.join(f'{reason}: {count}' for reason, count in sorted(reasons.items()))})" if reasons else ""
    print(
        f"[embed] done: {summary['embedded']} of {summary['files']} files embedded to {args.out} in {summary['seconds']:.1f} s; "
        f"{summary['skipped_count']} skipped{detail}",
        flush=True,
    )
    if summary["embedded"] == 0:
        raise SystemExit(f"mast embed: none of the {summary['files']} files could be decoded (see {args.out} metadata)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed audio files with a trained encoder (Parquet out)",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="files, folders (recursive) or glob patterns")
    parser.add_argument("--checkpoint", required=True, help="exported encoder folder, MLflow URI or MLflow run id")
    parser.add_argument("--out", required=True, help="Parquet file to write (a path or a URI such as s3://bucket/emb.parquet)")
    parser.add_argument("--frames", action="store_true", help="also write frame embeddings and their timestamps")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per encoder call (default 16)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for run ids and runs:/ URIs")
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        help="cut longer files into windows of this length (default: the encoder's max_frames)",
    )
    parser.add_argument("--workers", type=int, default=2, help="threads decoding files and computing features (default 2)")
    parser.set_defaults(handler=run, validate=validate)
