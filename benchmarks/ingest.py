"""Ingest throughput: clips/s of `mast ingest` on a generated set of 10-second clips.

Writes ``--clips`` WAV files (half at 16 kHz, half at 44.1 kHz stereo, so resampling and
down-mixing are part of the cost) in the ``folder`` layout, then ingests them with the embedded
local Ray and prints a table. The shards are kept in ``--work`` for ``benchmarks/data_pipeline.py``.

    python benchmarks/ingest.py --clips 2000 --work /tmp/mast-bench
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generate(root: Path, clips: int, seconds: float) -> float:
    """Write the clips (tones in noise, two labels); returns the bytes written in MB."""
    rng = np.random.default_rng(0)
    total = 0
    for index in range(clips):
        rate, channels = (16000, 1) if index % 2 == 0 else (44100, 2)
        label = "tone" if index % 4 < 2 else "noise"
        t = np.arange(int(seconds * rate)) / rate
        wave = 0.1 * rng.standard_normal(t.size) + (0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) if label == "tone" else 0)
        data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
        path = root / label / f"clip{index:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data.astype(np.float32), rate, subtype="PCM_16")
        total += path.stat().st_size
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-bench"))
    parser.add_argument("--num-cpus", type=int, default=None, help="logical CPUs for Ray (default max(cores, 4))")
    args = parser.parse_args()

    from pipelines.common.runtime import init_ray
    from pipelines.data.ingest import IngestSettings, ingest

    source, out = args.work / "source", args.work / "shards"
    if not (source / "tone").is_dir() or len(list(source.rglob("*.wav"))) != args.clips:
        shutil.rmtree(source, ignore_errors=True)
        started = time.perf_counter()
        size = generate(source, args.clips, args.seconds)
        print(f"generated {args.clips} clips ({size:.0f} MB of WAV) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    init_ray(args.num_cpus)
    report = ingest("folder", source, out, settings=IngestSettings(shard_mb=64), progress=lambda line: print(line, file=sys.stderr))
    import os

    print(f"\ningest of {args.clips} clips of {args.seconds:g} s (half 44.1 kHz stereo), {os.cpu_count()} cores\n")
    print("| clips | written | skipped | shards | seconds | clips/s | audio hours/s |")
    print("|---|---|---|---|---|---|---|")
    rate = report.written / report.seconds
    print(
        f"| {args.clips} | {report.written} | {report.skipped} | {report.shards} | {report.seconds:.1f} | {rate:.1f} | {rate * args.seconds / 3600:.3f} |"
    )


if __name__ == "__main__":
    main()
