"""`mast export`: the command line of :mod:`pipelines.serving.export`."""

from __future__ import annotations

import argparse

import pipelines.serving.export as _lib
from mast_core.checkpoint import CheckpointError, load_encoder, resolve_checkpoint
from mast_core.export import export_onnx, onnx_frame_range
from pipelines.common import storage
from pipelines.common.checkpoints import checkpoint_source
from pipelines.serving.export import ONNX_TOLERANCE, check_onnx, log_pyfunc


def validate(args: argparse.Namespace) -> None:
    if not args.onnx and not args.mlflow:
        raise SystemExit("mast export: give --onnx OUT.onnx and/or --mlflow")
    if args.onnx and not args.onnx.endswith(".onnx"):
        raise SystemExit(f"mast export: --onnx {args.onnx}: expected a .onnx file name")


def run(args: argparse.Namespace) -> None:
    source, tracking = checkpoint_source(args.checkpoint, args.tracking_uri)
    try:
        folder = resolve_checkpoint(source, tracking)
        encoder, features = load_encoder(folder)
    except CheckpointError as error:
        raise SystemExit(f"mast export: {args.checkpoint}: {error}") from None
    print(f"[export] {encoder.arch} encoder ({encoder.embed_dim}-d) from {source}", flush=True)
    if args.onnx:
        # written and checked locally, then uploaded when --onnx is a URI
        with storage.staged(args.onnx) as onnx:
            export_onnx(encoder, onnx, features)
            rows = check_onnx(onnx, encoder)
            print("[export] onnxruntime vs PyTorch (max abs difference / max abs value):")
            print("  frames  embedding  frames")
            for row in rows:
                print(f"  {row['frames']:>6}  {row['embedding_error']:.2e}   {row['frames_error']:.2e}")
            worst = max(max(row["embedding_error"], row["frames_error"]) for row in rows)
            if not worst <= ONNX_TOLERANCE:
                raise SystemExit(f"mast export: {args.onnx} differs from PyTorch by {worst:.2e} relative (> {ONNX_TOLERANCE:g})")
        low, high = onnx_frame_range(encoder)
        span = f"{low} to {high}" if high else f"{low} or more"
        print(
            f"[export] wrote {args.onnx}: input 'spec' (batch, {encoder.num_mel_bins}, frames) with {span} frames, "
            f"normalised with mean {features.mean:.4f}, std {features.std:.4f}",
            flush=True,
        )
    if args.mlflow:
        run_id = args.run_id
        if run_id is None and source.startswith("runs:/"):
            run_id = source.split("/")[1]
        uri = log_pyfunc(folder, tracking, run_id=run_id, experiment=args.experiment, registered_model=args.registered_model)
        print(f"[export] logged MLflow pyfunc {uri} at {tracking}", flush=True)
        print(f"[export] serve it: MLFLOW_TRACKING_URI={tracking} mlflow models serve -m {uri} --env-manager local -p 5001", flush=True)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export an encoder to ONNX and/or an MLflow pyfunc model",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="exported encoder folder, MLflow URI or MLflow run id")
    parser.add_argument("--onnx", default=None, metavar="OUT.onnx", help="write and check an ONNX graph (a path or a URI)")
    parser.add_argument("--mlflow", action="store_true", help="log an mlflow.pyfunc model named 'model'")
    parser.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    parser.add_argument("--run-id", default=None, help="log the pyfunc into this run (default: the checkpoint's run, else a new run)")
    parser.add_argument("--experiment", default="mast-models", help="experiment of a new run (default mast-models)")
    parser.add_argument("--registered-model", default=None, help="also register the model under this name")
    parser.set_defaults(handler=run, validate=validate)
