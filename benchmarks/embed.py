"""Throughput of the `mast embed` path: clips/s for 10 s FLAC files, per encoder and device.

The measured path is exactly what `mast embed` runs (``pipelines.serving.embed.embed_files``): FLAC
decoding and per-clip log-mel + normalisation in worker threads one chunk ahead, windowed and
batched encoder calls in the main thread, Parquet writing. Encoders are random-init ``mast_tiny`` and ``mast_small`` (speed does
not depend on the weights) exported with ``save_encoder`` and loaded back with ``load_encoder``;
the clips are real 16-bit FLAC files (tones and noise) written with soundfile. A warm-up run
on a few files (not timed) comes first; the best of ``--repeats`` timed runs is reported.

    python benchmarks/embed.py                            # CPU (and CUDA when available)
    python benchmarks/embed.py --clips 256 --batch-size 32 --models mast_small
    python benchmarks/embed.py --threads 1       # on a CPU shared with other jobs (see below)

Columns: clips/s of the whole path, audio seconds embedded per wall-clock second ("x realtime"),
and, for reference, clips/s of the encoder alone on the same padded batches (the difference is
decoding, features, batching and Parquet; on a small CPU the decoding threads also compete with
the encoder for cores).

On a CPU shared with other busy processes, torch's OpenMP threads (one per core by default) can
lose most of their speed waiting for each other at every kernel: on the 2-core development box
with another job running, MAST-S alone ran at 2.3 clips/s with 2 threads, 14 with 1 thread and
26 with ``OMP_WAIT_POLICY=ACTIVE``. Compare runs with ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from mast_core import Embedder, FeatureSettings, load_encoder, save_encoder  # noqa: E402
from mast_core.embed import bucket_frames  # noqa: E402
from mast_core.mast import mast_small, mast_tiny  # noqa: E402
from pipelines.serving.embed import embed_files  # noqa: E402

MODELS = {"mast_tiny": mast_tiny, "mast_small": mast_small}
RATE = 16_000


def write_clips(folder: Path, count: int, seconds: float, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    files = []
    for index in range(count):
        tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 4000, size=4)) / 8
        wave = (tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        path = folder / f"clip{index:04d}.flac"
        sf.write(path, wave, RATE, subtype="PCM_16")
        files.append(path)
    return files


def encoder_seconds(embedder: Embedder, frames: int, clips: int) -> float:
    """Encoder time alone for ``clips`` clips of ``frames`` frames, in batches of the embedder's size."""
    spec = torch.randn(embedder.batch_size, 128, bucket_frames(frames), device=embedder.device)  # padded as embed pads
    lengths = torch.full((embedder.batch_size,), frames, device=embedder.device)
    calls = -(-clips // embedder.batch_size)
    with torch.no_grad():
        embedder._encode(spec, lengths)
        if embedder.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(calls):
            embedder._encode(spec, lengths)
        if embedder.device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--clips", type=int, default=64, help="files per run (default 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip (default 10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default 2, as `mast embed`)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "audio").mkdir()
        files = write_clips(scratch / "audio", args.clips, args.seconds)
        print(
            f"{len(files)} FLAC clips of {args.seconds:g} s; batch {args.batch_size} windows; {args.workers} decode+feature threads; "
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores"
        )
        rows = []
        for name in args.models:
            torch.manual_seed(0)
            folder = save_encoder(MODELS[name]().eval(), scratch / name, FeatureSettings())
            params = sum(p.numel() for p in load_encoder(folder)[0].parameters())
            for device in devices:
                model, features = load_encoder(folder, map_location=device)
                embedder = Embedder(model, features, batch_size=args.batch_size, device=device)
                frames = 1 + (int(args.seconds * RATE) - 400) // 160
                # encoder alone first: right after the threaded path, idle OpenMP teams of the finished
                # worker threads slow the main thread's kernels for a moment (measured: ~6x, gone after a 2 s pause)
                encoder = min(encoder_seconds(embedder, frames, len(files)) for _ in range(args.repeats))
                quiet = lambda *_: None  # noqa: E731
                embed_files(files[: min(4, len(files))], embedder, scratch / "warm.parquet", workers=args.workers, progress=quiet)
                best = float("inf")
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    summary = embed_files(files, embedder, scratch / "out.parquet", workers=args.workers, progress=quiet)
                    best = min(best, time.perf_counter() - started)
                    assert summary["embedded"] == len(files)
                time.sleep(2)  # let the worker threads' OpenMP teams go idle before the next row
                rows.append(
                    (name, f"{params / 1e6:.1f} M", device, len(files) / best, len(files) * args.seconds / best, len(files) / encoder)
                )
                print(f"  {name} on {device}: {len(files) / best:.1f} clips/s", flush=True)

    print()
    print("| encoder | params | device | clips/s | x realtime | encoder alone, clips/s |")
    print("|---|---|---|---|---|---|")
    for name, params, device, rate, realtime, alone in rows:
        print(f"| {name} | {params} | {device} | {rate:.1f} | {realtime:.0f} | {alone:.1f} |")


if __name__ == "__main__":
    main()
