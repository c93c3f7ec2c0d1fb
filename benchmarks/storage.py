"""Pretraining samples/s with the shards in S3 against the same shards on the local disk, one run.

The same `pipelines.pretrain.driver` job (Ray Train, the Ray Data stream, checkpoints and MLflow)
runs alternately on the local shards and on a copy in an S3 bucket, --rounds times each; the S3
side keeps its checkpoints and export in the bucket too. samples/s is read back from each MLflow
run (per step, after --warmup steps). By default the bucket is on a moto S3 server started here on
127.0.0.1 (the suite's S3); with --endpoint (and the AWS variables) any S3-compatible store.
Run ``benchmarks/ingest.py`` first (it leaves shards in --work/shards).

    python benchmarks/ingest.py --clips 500 --work /tmp/mast-bench
    python benchmarks/storage.py --work /tmp/mast-bench --steps 30 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def start_s3() -> str:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    return f"http://{host}:{port}"


def run_once(shards: str, storage_root: str, name: str, args, tracking: str) -> list[float]:
    from mlflow import MlflowClient

    from pipelines.common.config import load_config
    from pipelines.pretrain.driver import PretrainConfig, pretrain

    config = load_config(
        PretrainConfig,
        Path(__file__).resolve().parents[1] / "configs/pretrain/tiny_cpu.yaml",
        [
            f"run.name={name}",
            f"run.storage={storage_root}",
            f"run.num_workers={args.workers}",
            f"run.checkpoint_every={args.steps}",
            "run.log_every=5",
            f"optim.total_steps={args.steps}",
            f"optim.batch_size={args.batch}",
            f"data.frames_per_clip={args.frames}",
            f"data.decode_actors={args.decode}",
            f"data.sources=[{{path: '{shards}', weight: 8}}]",
        ],
    )
    result = pretrain(config, tracking)
    history = sorted(MlflowClient(tracking).get_metric_history(result["run_id"], "samples_per_s"), key=lambda m: m.step)
    return [m.value for m in history if m.step > args.warmup]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-bench"))
    parser.add_argument("--endpoint", default=None, help="an S3 endpoint to use instead of a local moto server")
    parser.add_argument("--bucket", default=None, help="an existing bucket (default: a new one on the local server)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--decode", type=int, default=2)
    args = parser.parse_args()

    local_shards = args.work / "shards"
    if not (local_shards / "manifest.json").is_file():
        raise SystemExit(f"{local_shards}/manifest.json not found; run benchmarks/ingest.py --work {args.work} first")
    os.environ["AWS_ENDPOINT_URL"] = args.endpoint or start_s3()
    from pipelines.common import storage
    from pipelines.common.runtime import init_ray

    storage.clear_cache()
    bucket = args.bucket
    if bucket is None:
        import boto3

        bucket = f"mast-bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    remote_shards = f"s3://{bucket}/data/shards"
    print(f"copying {local_shards} to {remote_shards} ...", flush=True)
    storage.copy_tree(str(local_shards), remote_shards)
    init_ray()
    tracking = f"sqlite:///{args.work / 'storage-bench.db'}"
    rates: dict[str, list[float]] = {"local disk": [], "S3": []}
    for round_ in range(args.rounds):
        tag = uuid.uuid4().hex[:6]
        rates["local disk"] += run_once(str(local_shards), str(args.work / "storage-runs"), f"local-{tag}", args, tracking)
        rates["S3"] += run_once(remote_shards, f"s3://{bucket}/runs", f"s3-{tag}", args, tracking)
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)

    local = statistics.median(rates["local disk"])
    print(f"\npretraining samples/s, median over steps {args.warmup + 1}..{args.steps} of {args.rounds} runs each (alternating)")
    print("| shards on | samples/s (median) | min | max | steps | vs local |")
    print("|---|---|---|---|---|---|")
    for where, values in rates.items():
        median = statistics.median(values)
        print(f"| {where} | {median:.1f} | {min(values):.1f} | {max(values):.1f} | {len(values)} | {median / local:.2f} |")


if __name__ == "__main__":
    main()
