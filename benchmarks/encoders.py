"""Encoder cost, side by side in one run: forward+backward time and peak memory.

Rows: MAST-S (ours), AST-B (ViT-B/16 at stride 10) and, as the reference the authors wrapped,
timm's ``mvitv2_small`` with the AST stem (1 channel, 16x16 patches at stride 10). timm sizes its
relative-position tables for a square image, so it is built for a square side of
``timm_image_side(frames)`` (1.25 x frames): with the side equal to the frame count it crashes
(an index error) at both 512 and 1024 frames, the released code's defect 2 (docs/design.md). Each row runs in its
own subprocess so peak memory (RSS on CPU, ``max_memory_allocated`` on GPU) belongs to that model
alone.

    python benchmarks/encoders.py                          # CPU: 128 x 1024, batch 8
    python benchmarks/encoders.py --frames 512             # add --models to choose rows
    python benchmarks/encoders.py --device cuda --bf16 --batch 64   # GPU throughput

Ratios are printed against the first row (MAST-S by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("mast_small", "ast_base", "timm_mvitv2_small")


def timm_image_side(frames: int) -> int:
    """Square image side whose timm tables cover a 128 x ``frames`` input (multiple of 16)."""
    return -(-int(frames * 1.25) // 16) * 16


def build(name: str, frames: int):
    import torch

    if name == "mast_small":
        from mast_core.mast import mast_small

        return mast_small(max_frames=max(frames, 1024))
    if name == "ast_base":
        from mast_core.ast import ast_base

        return ast_base(max_frames=max(frames, 1024))
    if name == "timm_mvitv2_small":
        from timm.models.mvitv2 import MultiScaleVit, model_cfgs

        cfg = dataclasses.replace(model_cfgs["mvitv2_small"], patch_kernel=(16, 16), patch_stride=(10, 10), patch_padding=(0, 0))
        model = MultiScaleVit(cfg, img_size=timm_image_side(frames), in_chans=1, num_classes=0)

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, spec):
                return self.model(spec[:, None])

        return Wrapped()
    raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")


def measure(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(name, args.frames).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    spec = torch.randn(args.batch, 128, args.frames, device=device)
    dtype = torch.bfloat16 if args.bf16 else torch.float32

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
            out = model(spec)
        out.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.iters):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / args.iters
    except Exception as error:  # reported as a row: the reference model crashes on long inputs
        queue.put({"model": name, "params": params, "error": f"{type(error).__name__}: {str(error)[:80]}"})
        return
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux; growth over the state after building the model
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    queue.put({"model": name, "params": params, "seconds": seconds, "peak_mb": peak_mb})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    context = mp.get_context("spawn")
    rows = []
    for name in args.models:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        queue = context.Queue()
        process = context.Process(target=measure, args=(name, args, queue))
        process.start()
        process.join()
        rows.append(queue.get() if not queue.empty() else {"model": name, "error": f"exit code {process.exitcode}"})

    print(
        f"\nforward+backward, input 128 x {args.frames}, batch {args.batch}, {args.device}"
        f"{' bf16' if args.bf16 else ' fp32'}, {args.threads} threads, mean of {args.iters} steps"
        f" (timm_mvitv2_small built for a {timm_image_side(args.frames)} square image)\n"
    )
    print("| model | params (M) | ms / step | ms / clip | clips/s | peak MB | time vs first row |")
    print("|---|---|---|---|---|---|---|")
    reference = rows[0].get("seconds")
    for row in rows:
        if "error" in row:
            print(f"| {row['model']} | {row.get('params', 0) / 1e6:.1f} | failed: {row['error']} | | | | |")
            continue
        ratio = f"{row['seconds'] / reference:.1f}x" if reference else "-"
        print(
            f"| {row['model']} | {row['params'] / 1e6:.1f} | {row['seconds'] * 1e3:.0f} | "
            f"{row['seconds'] * 1e3 / args.batch:.1f} | {args.batch / row['seconds']:.1f} | {row['peak_mb']:.0f} | {ratio} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
