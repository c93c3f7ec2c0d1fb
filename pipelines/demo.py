"""`mast demo`: a short end-to-end smoke of the method on one machine, fully offline.

Today it exercises the library on synthetic audio: waveforms -> batched log-mel -> statistics ->
two augmented views (log-mixup-exp, random resize crop, SpecAugment) -> a few SS-MAST steps of
a tiny MAST with patch-drop -> export (safetensors + JSON) -> reload -> identical embeddings.
The data, Ray Train and Ray Tune stages join it as they land (see README).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from mast_core.augment import LogMixupExp, RandomResizeCrop, SpecAugment
from mast_core.checkpoint import FeatureSettings, load_encoder, save_encoder
from mast_core.features import SAMPLE_RATE, compute_stats, log_mel, normalize
from mast_core.mast import mast_tiny
from mast_core.ssmast import SSMAST, momentum_schedule


def synthetic_clips(count: int, seconds: float, generator: torch.Generator) -> torch.Tensor:
    """Harmonic tones with vibrato and noise bursts at random levels: (count, samples) in [-1, 1]."""
    samples = int(seconds * SAMPLE_RATE)
    t = torch.arange(samples) / SAMPLE_RATE
    clips = []
    for _ in range(count):
        f0 = 80 + 700 * torch.rand((), generator=generator)
        vibrato = 1 + 0.02 * torch.sin(2 * math.pi * (2 + 6 * torch.rand((), generator=generator)) * t)
        harmonics = sum(torch.sin(2 * math.pi * k * f0 * vibrato * t) / k for k in range(1, 6))
        envelope = (torch.sin(2 * math.pi * torch.rand((), generator=generator) * 3 * t) > 0).float() * 0.7 + 0.3
        noise = torch.randn(samples, generator=generator) * 0.05
        level = 10 ** (-torch.rand((), generator=generator) * 1.5)
        clips.append((harmonics * envelope / 3 + noise) * level)
    return torch.stack(clips).clamp(-1, 1)


def run(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()

    print(f"[1/4] synthesising {args.clips} clips of {args.seconds:.0f} s and computing log-mel features")
    waves = synthetic_clips(args.clips, args.seconds, generator)
    specs = log_mel(waves)
    stats = compute_stats([specs])
    print(f"      features {tuple(specs.shape)}, mean {stats.mean:.3f}, std {stats.std:.3f}")

    print(f"[2/4] SS-MAST on mast_tiny: {args.steps} steps, batch {args.batch}, patch-drop {args.patch_drop}")
    model = SSMAST(mast_tiny(max_frames=specs.shape[-1]), queue_size=args.queue_size, patch_drop=args.patch_drop)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.05)
    mixup, crop, masks = LogMixupExp(seed=args.seed), RandomResizeCrop(seed=args.seed + 1), SpecAugment(seed=args.seed + 2)

    def view(batch: torch.Tensor) -> torch.Tensor:
        # mixup on log power; crop and masks fill with 0, the mean once normalised
        return masks(crop(normalize(mixup(batch), stats.mean, stats.std)))

    model.train()
    for step in range(args.steps):
        index = torch.randint(0, specs.shape[0], (args.batch,), generator=generator)
        loss, step_stats = model(view(specs[index]), view(specs[index]), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.update_teacher(momentum_schedule(step, args.steps))
        print(
            f"      step {step + 1:3d}/{args.steps}  loss {step_stats['loss']:.4f}  "
            f"acc {step_stats['accuracy']:.2f}  query std {step_stats['query_std']:.3f}"
        )

    print(f"[3/4] exporting the student encoder to {args.out}")
    save_encoder(model.student, args.out, FeatureSettings(mean=stats.mean, std=stats.std))
    encoder, features = load_encoder(args.out)

    print("[4/4] reloading and embedding")
    model.student.eval()
    inputs = normalize(specs[:4], features.mean, features.std)
    with torch.no_grad():
        same = torch.equal(encoder(inputs), model.student(inputs))
        embeddings = encoder(inputs)
    print(f"      embeddings {tuple(embeddings.shape)}; reloaded encoder matches: {same}")
    if not same:
        raise SystemExit("reloaded encoder gives different embeddings")
    print(f"demo finished in {time.perf_counter() - start:.1f} s")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the offline end-to-end smoke", description=__doc__)
    parser.add_argument("--clips", type=int, default=32, help="synthetic clips to generate (default 32)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length in seconds (default 2)")
    parser.add_argument("--steps", type=int, default=10, help="SS-MAST steps (default 10)")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (default 8)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--patch-drop", type=float, default=0.2)
    parser.add_argument("--queue-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/demo/encoder"), help="export folder")
    parser.set_defaults(handler=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    for name in ("clips", "steps", "batch", "queue_size", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"mast demo: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.seconds < 0.2:
        raise SystemExit(f"mast demo: --seconds must be >= 0.2 (16 frames), got {args.seconds}")
    if not 0.0 <= args.patch_drop < 1.0:
        raise SystemExit(f"mast demo: --patch-drop must be in [0, 1), got {args.patch_drop}")
