"""Peak memory of embedding one long recording, side by side for 1, 10 and 60 minutes.

Rows, each measured in its own process (peak RSS = ``ru_maxrss`` of that process alone):

- ``mast embed`` (the CLI, in-process): the file is read window by window (``AudioReader`` +
  ``Embedder.embed_long``), clip embedding only, and with ``--frames`` (whose output, the frame
  embeddings, grows with the length by nature);
- the HEAR module: ``get_scene_embeddings`` and ``get_timestamp_embeddings`` (50 ms hop) on the
  recording as one ``(1, samples)`` float tensor, which HEAR's API hands over whole: the table
  also gives the input's and the output's bytes, and the peak beyond them;
- the whole-clip path as it was before (``Embedder.embed`` of the decoded waveform), for scale.

    python benchmarks/long_audio.py --work /tmp/mast-long --arch mast_small --minutes 1 10 60

The recordings are tones plus noise, 16 kHz mono FLAC, written once into --work. The encoder is
randomly initialised (memory does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RATE = 16000
MODES = ("embed", "embed_frames", "hear_scene", "hear_timestamps", "whole_clip")


def write_recording(path: Path, minutes: int) -> None:
    import numpy as np
    import soundfile as sf

    if path.exists():
        return
    rng = np.random.default_rng(minutes)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16", format="FLAC") as out:
        for second in range(minutes * 60):  # a second at a time: the writer never holds the whole recording
            t = np.arange(RATE) / RATE + second
            out.write((0.2 * np.sin(2 * np.pi * (220 + second % 50) * t) + rng.normal(0, 0.02, RATE)).astype(np.float32))


def child(mode: str, recording: Path, export: Path, work: Path) -> dict:
    """One measurement, in this process: what it produced and its peak RSS."""
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    extra: dict = {}
    if mode.startswith("embed"):
        from pipelines.cli import main

        args = ["embed", str(recording), "--checkpoint", str(export), "--out", str(work / f"{mode}.parquet"), "--batch-size", "4"]
        main(args + (["--frames"] if mode == "embed_frames" else []))
    else:
        from mast_core import Embedder, hear, load_encoder
        from mast_core.embed import read_clip

        wave = read_clip(recording, RATE)
        extra["input_mb"] = wave.numel() * 4 / 2**20
        if mode == "whole_clip":
            out = Embedder(*load_encoder(export), batch_size=4).embed([wave])
            extra["output_mb"] = out.clip.numel() * 4 / 2**20
        else:
            model = hear.load_model(export, device="cpu", batch_size=4)
            if mode == "hear_scene":
                out = hear.get_scene_embeddings(wave[None], model)
                extra["output_mb"] = out.numel() * 4 / 2**20
            else:
                frames, ms = hear.get_timestamp_embeddings(wave[None], model)
                extra["output_mb"] = (frames.numel() + ms.numel()) * 4 / 2**20
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": time.perf_counter() - started, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-long"))
    parser.add_argument("--arch", default="mast_small", help="encoder (randomly initialised): mast_small, mast_tiny, ast_base, ...")
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 10, 60])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "RECORDING", "EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.work)))
        return

    import torch

    from mast_core import FeatureSettings, save_encoder
    from mast_core.registry import build_encoder

    args.work.mkdir(parents=True, exist_ok=True)
    export = args.work / f"encoder-{args.arch}"
    if not export.exists():
        torch.manual_seed(0)
        save_encoder(build_encoder(args.arch).eval(), export, FeatureSettings(mean=-4.0, std=4.0))
    rows = []
    for minutes in args.minutes:
        recording = args.work / f"recording-{minutes}min.flac"
        print(f"writing {recording} ...", file=sys.stderr, flush=True)
        write_recording(recording, minutes)
        for mode in args.modes:
            print(f"running {mode} on {minutes} min ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, __file__, "--work", str(args.work), "--child", mode, str(recording), str(export)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                rows.append((minutes, mode, {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:80]}))
                continue
            rows.append((minutes, mode, json.loads(done.stdout.strip().splitlines()[-1])))

    print(f"\n{args.arch}, batch 4 windows, CPU, peak RSS per process\n")
    print("| minutes | what | peak RSS (MB) | input (MB) | output (MB) | peak - input - output (MB) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for minutes, mode, result in rows:
        if "error" in result:
            print(f"| {minutes} | {mode} | failed: {result['error']} | | | | |")
            continue
        inside = result.get("input_mb", 0.0) + result.get("output_mb", 0.0)
        cells = [f"{result[k]:.0f}" if k in result else "" for k in ("input_mb", "output_mb")]
        print(
            f"| {minutes} | {mode} | {result['peak_mb']:.0f} | {cells[0]} | {cells[1]} | {result['peak_mb'] - inside:.0f} | {result['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
