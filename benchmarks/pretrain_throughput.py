"""Ray overhead of pretraining: the full Ray Train job vs a plain PyTorch loop, same batches.

Both run the same SS-MAST model, optimiser and number of threads on the same in-memory batches
of two views (no decoding, so only the training machinery differs). The Ray side is the real
`pipelines.pretrain.driver` job: TorchTrainer, Ray Data iteration, checkpoints and MLflow logging. Its
samples/s is read back from the MLflow run (per-step, after warm-up); the plain loop's is timed
the same way, once before and once after the Ray job (the mean is the reference).

    python benchmarks/pretrain_throughput.py                      # mast_tiny, 512 frames, CPU
    python benchmarks/pretrain_throughput.py --arch mast_small --frames 1024 --batch 64 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_batches(count: int, batch: int, frames: int):
    import numpy as np

    rng = np.random.default_rng(0)
    return [
        {
            "view_a": rng.standard_normal((batch, 128, frames), dtype=np.float32),
            "view_b": rng.standard_normal((batch, 128, frames), dtype=np.float32),
        }
        for _ in range(count)
    ]


def plain_loop(config, batches, device: str, warmup: int) -> float:
    import torch

    from pipelines.pretrain.loop import build_objective, learning_rate_factor

    torch.set_num_threads(config.run.torch_threads)
    torch.manual_seed(0)
    model = build_objective(config).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: learning_rate_factor(s, config.optim.warmup_steps, config.optim.total_steps)
    )
    rates = []
    use_bf16 = device == "cuda"
    for step, batch in enumerate(batches):
        started = time.perf_counter()
        views = {key: torch.from_numpy(batch[key]).to(device) for key in model.views}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
            loss, _ = model(views)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.optim.clip_grad)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        model.after_step(step, config.optim.total_steps)
        if device == "cuda":
            torch.cuda.synchronize()
        rates.append(views["view_a"].shape[0] / (time.perf_counter() - started))
    return statistics.mean(rates[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mast_tiny")
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import ray.data
    from mlflow import MlflowClient

    from pipelines.common.config import load_config
    from pipelines.common.runtime import init_ray
    from pipelines.pretrain.driver import PretrainConfig, pretrain

    work = Path(tempfile.mkdtemp(prefix="mast-throughput-"))
    batches = make_batches(args.steps, args.batch, args.frames)
    config = load_config(
        PretrainConfig,
        None,
        [
            "run.name=throughput",
            f"run.storage={work / 'runs'}",
            "run.num_workers=1",
            f"run.torch_threads={args.threads}",
            f"run.cpus_per_worker={args.threads}",
            f"run.use_gpu={'true' if args.device == 'cuda' else 'false'}",
            f"run.checkpoint_every={args.steps}",
            "run.log_every=10",
            f"model.arch={args.arch}",
            "objective.queue_size=4096",
            f"optim.total_steps={args.steps}",
            f"optim.batch_size={args.batch}",
            "optim.warmup_steps=5",
            f"data.frames_per_clip={args.frames}",
            "data.shuffle_buffer=0",
            f"data.sources=[{{path: '{work}'}}]",
        ],
    )
    print("plain PyTorch loop ...", file=sys.stderr, flush=True)
    plain_before = plain_loop(config, batches, args.device, args.warmup)

    print("Ray Train job ...", file=sys.stderr, flush=True)
    init_ray(num_cpus=args.threads + 2)
    rows = [{"view_a": b["view_a"][i], "view_b": b["view_b"][i]} for b in batches for i in range(args.batch)]
    dataset = ray.data.from_items(rows).materialize()  # in memory, like the plain loop's batches
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    started = time.perf_counter()
    result = pretrain(config, tracking, dataset=dataset, stats=(0.0, 0.5))
    wall = time.perf_counter() - started
    history = sorted(MlflowClient(tracking).get_metric_history(result["run_id"], "samples_per_s"), key=lambda m: m.step)
    ray_rate = statistics.mean(m.value for m in history[args.warmup :])
    # The plain loop again, after the Ray job, with Ray still up: its daemons share the CPUs in
    # both measurements, and averaging before/after cancels slow drifts of a noisy machine.
    print("plain PyTorch loop again ...", file=sys.stderr, flush=True)
    plain_after = plain_loop(config, batches, args.device, args.warmup)
    plain = (plain_before + plain_after) / 2

    print(
        f"\nSS-MAST {args.arch}, {args.frames} frames, batch {args.batch}, {args.threads} threads, {args.device}, "
        f"{args.steps} steps (first {args.warmup} excluded)\n"
    )
    print("| loop | samples/s | vs plain |")
    print("|---|---|---|")
    print(f"| plain PyTorch, single process (mean of {plain_before:.1f} before and {plain_after:.1f} after) | {plain:.1f} | 1.00 |")
    print(f"| Ray Train job (1 worker, Ray Data, checkpoints, MLflow) | {ray_rate:.1f} | {ray_rate / plain:.2f} |")
    print(
        f"\nRay overhead in steady state: {100 * (1 - ray_rate / plain):.1f} %; "
        f"the whole job took {wall:.1f} s including Ray Train start-up and the final export."
    )


if __name__ == "__main__":
    main()
