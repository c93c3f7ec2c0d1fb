"""The prepared device check (issue 13): one call on a GPU machine, one table. ``gpu_check.sh`` runs it.

Rows, each measured here and now (a stage that fails prints its error in its row and the rest go on):

1. **encoders**: MAST-S and AST-B forward+backward at 128 x frames (``benchmarks/encoders.py``, one
   subprocess per model): samples/s, peak memory, MAST-S / AST-B ratio.
2. **attention kernel**: the ``aten`` scaled-dot-product kernels a MAST-S forward runs, read from the
   torch profiler (fused: ``_efficient_attention`` / ``_flash_attention``; fallback: ``_math``).
3. **pretraining**: ``mast pretrain`` (the real CLI: embedded Ray, Ray Train, Ray Data, MLflow) of
   SS-MAST on freshly ingested shards with ``data.features=device``: clips/s after the first steps,
   data-wait share of step time, peak GPU memory, read back from the run's MLflow metrics.
4. **embed**: clips/s of the ``mast embed`` path on 10 s FLAC files (``benchmarks/embed.py``).

    python benchmarks/gpu_check.py                # GPU sizes: 1024 frames, batch 64, bf16
    python benchmarks/gpu_check.py --tiny         # CPU, tiny sizes: what CI runs (tests/e2e)

Goals (issue 13): MAST-S >= 10x AST-B samples/s; pretraining >= 2,000 clips/s with data wait < 5 %.
The table's last column says which goal a row meets and, for a missed one, the stage that holds it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sizes(tiny: bool) -> dict:
    if tiny:  # CPU, seconds per stage: the check's code paths, not its figures
        return dict(
            device="cpu",
            frames=128,
            batch=2,
            iters=1,
            warmup=0,
            arch="mast_tiny",
            pre_frames=98,
            pre_batch=8,
            steps=4,
            clips=48,
            seconds=1.0,
            embed_clips=4,
        )
    return dict(
        device="cuda",
        frames=1024,
        batch=64,
        iters=10,
        warmup=3,
        arch="mast_small",
        pre_frames=1024,
        pre_batch=64,
        steps=120,
        clips=2048,
        seconds=10.24,
        embed_clips=512,
    )


def run(command: list[str], timeout: float) -> str:
    """Run a stage's subprocess; its stdout, or an exception naming its last lines of stderr."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(done.stderr.strip().splitlines()[-3:])[:300]}")
    return done.stdout


def encoders(s: dict, scratch: Path) -> list[tuple]:
    out = scratch / "encoders.json"
    command = [sys.executable, "benchmarks/encoders.py", "--models", "mast_small", "ast_base", "--device", s["device"]]
    command += ["--frames", str(s["frames"]), "--batch", str(s["batch"]), "--iters", str(s["iters"]), "--warmup", str(s["warmup"])]
    command += ["--threads", str(os.cpu_count() or 2), "--json", str(out)] + (["--bf16"] if s["device"] == "cuda" else [])
    run(command, 600)
    rows = {row["model"]: row for row in json.loads(out.read_text())["rows"]}
    rate = {name: s["batch"] / row["seconds"] for name, row in rows.items() if "seconds" in row}
    ratio = rate.get("mast_small", 0) / rate["ast_base"] if "ast_base" in rate else float("nan")
    table = []
    for name in ("mast_small", "ast_base"):
        row = rows[name]
        if "error" in row:
            table.append((f"encoder {name}", row["error"], "", "", ""))
            continue
        goal = ""
        if name == "mast_small":
            goal = f"{ratio:.1f}x AST-B"
        if s["device"] == "cuda":  # the goal is a GPU figure (bf16, 1024 frames)
            goal += " (goal >= 10x: met)" if ratio >= 10 else " (goal >= 10x: missed, held by the model)"
        dtype = "bf16" if s["device"] == "cuda" else "fp32"
        table.append(
            (
                f"encoder {name} fwd+bwd, 128x{s['frames']}, batch {s['batch']}, {dtype}",
                f"{rate[name]:.1f} samples/s",
                "",
                f"{row['peak_mb']:.0f} MB",
                goal,
            )
        )
    return table


def attention_kernel(s: dict) -> list[tuple]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mast_core.mast import mast_small

    device = torch.device(s["device"])
    model = mast_small().to(device).eval()
    spec = torch.randn(2, 128, s["frames"], device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        model(spec)  # warm-up: kernel selection
        with profile(activities=activities) as prof:
            model(spec)
    names = sorted(
        {
            e.key
            for e in prof.key_averages()
            if re.search(r"scaled_dot_product|_efficient_attention|_flash_attention|_cudnn_attention", e.key)
        }
    )
    fused = [n for n in names if re.search(r"efficient|flash|cudnn", n) and "math" not in n]
    verdict = "fused" if fused and not any("math" in n for n in names) else "math fallback"
    return [("attention kernel (MAST-S, relative-position bias)", verdict, "", "", ", ".join(n.removeprefix("aten::") for n in names))]


def make_shards(s: dict, scratch: Path) -> Path:
    import runpy

    # the ingest benchmark's clips (tones and noise, half of them 44.1 kHz stereo), through `mast ingest`
    # in its own process, so that its embedded Ray is gone before the pretraining job starts one
    runpy.run_path(str(ROOT / "benchmarks/ingest.py"))["generate"](scratch / "audio", s["clips"], s["seconds"])
    run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "ingest",
            "folder",
            "--root",
            str(scratch / "audio"),
            "--out",
            str(scratch / "shards"),
            "--shard-mb",
            "32",
        ],
        600,
    )
    shutil.rmtree(scratch / "audio")
    return scratch / "shards"


def pretraining(s: dict, scratch: Path) -> list[tuple]:
    from mlflow import MlflowClient

    shards = make_shards(s, scratch)
    tracking = f"sqlite:///{scratch / 'mlflow.db'}"
    gpu = s["device"] == "cuda"
    overrides = {
        "run.name": "gpu-check",
        "run.storage": str(scratch / "runs"),
        "run.num_workers": 1,
        "run.use_gpu": str(gpu).lower(),
        "run.cpus_per_worker": 1,
        "run.checkpoint_every": s["steps"],
        "run.log_every": 1,
        "model.arch": s["arch"],
        "optim.batch_size": s["pre_batch"],
        "optim.total_steps": s["steps"],
        "optim.warmup_steps": 1,
        "data.frames_per_clip": s["pre_frames"],
        "data.features": "device",
        "data.decode_actors": max(1, (os.cpu_count() or 2) - 2),
        "data.featurize_batch": 32,
        "data.shuffle_buffer": 0,
        "data.val_clips": 16,
        "data.augment.time_mask": max(1, s["pre_frames"] // 20),
        "data.sources": f"[{{path: '{shards}'}}]",
        "data.validation_sources": f"[{{path: '{shards}'}}]",
    }
    command = [sys.executable, "-m", "pipelines", "pretrain", "--config", "configs/pretrain/tiny_cpu.yaml", "--tracking-uri", tracking]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    started = time.perf_counter()
    run(command, 900)
    wall = time.perf_counter() - started
    client = MlflowClient(tracking)
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    (found,) = client.search_runs([experiment.experiment_id], "tags.`mast.run_name` = 'gpu-check'")
    history = {
        key: {m.step: m.value for m in client.get_metric_history(found.info.run_id, key)}
        for key in ("samples_per_s", "data_wait_s", "gpu_memory_gb")
    }
    skip = max(1, s["steps"] // 5)  # the first steps compile kernels and fill the pipeline
    steps = [step for step in sorted(history["samples_per_s"]) if step > skip] or sorted(history["samples_per_s"])
    step_time = sum(s["pre_batch"] / history["samples_per_s"][step] for step in steps)
    clips_per_s = len(steps) * s["pre_batch"] / step_time
    wait_share = sum(history["data_wait_s"].get(step, 0.0) for step in steps) / step_time
    memory = f"{max(history['gpu_memory_gb'].values()) * 1024:.0f} MB" if history["gpu_memory_gb"] else "n/a on CPU"
    goal = ""
    if gpu:
        held = "data (decode/transfer)" if wait_share >= 0.05 else "model/features"
        goal = "goal >= 2000 clips/s, wait < 5 %: " + ("met" if clips_per_s >= 2000 and wait_share < 0.05 else f"missed, held by {held}")
    label = f"pretrain SS-MAST {s['arch']} (mast pretrain, Ray Train, features=device), {s['pre_frames']} frames, batch {s['pre_batch']}, {len(steps)} steps"
    return [(label, f"{clips_per_s:.1f} clips/s", f"{100 * wait_share:.1f} %", memory, f"{goal} (job wall {wall:.0f} s)".strip())]


def embedding(s: dict) -> list[tuple]:
    command = [sys.executable, "benchmarks/embed.py", "--models", "mast_small", "--devices", s["device"], "--clips", str(s["embed_clips"])]
    command += ["--seconds", "10", "--repeats", "1", "--batch-size", "32" if s["device"] == "cuda" else "4"]
    line = next(line for line in run(command, 600).splitlines() if line.startswith("| mast_small"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    return [
        (
            f"mast embed, MAST-S, {s['embed_clips']} FLAC clips of 10 s",
            f"{cells[3]} clips/s",
            "",
            "",
            f"encoder alone {cells[5]} clips/s, {cells[4]}x realtime",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny sizes (CI)")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["encoders", "attention", "pretrain", "embed"],
        choices=["encoders", "attention", "pretrain", "embed"],
    )
    args = parser.parse_args()
    import torch

    s = sizes(args.tiny)
    if s["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run with --tiny on a CPU machine")
    device = torch.cuda.get_device_name() if s["device"] == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"gpu_check on {device}; torch {torch.__version__}; {'tiny CPU sizes' if args.tiny else 'GPU sizes'}", flush=True)
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="mast-gpu-check-") as scratch:
        stages = {
            "encoders": lambda: encoders(s, Path(scratch)),
            "attention": lambda: attention_kernel(s),
            "pretrain": lambda: pretraining(s, Path(scratch)),
            "embed": lambda: embedding(s),
        }
        for name in args.stages:
            started = time.perf_counter()
            try:
                rows += stages[name]()
            except Exception as error:  # one stage's failure must not cost the other rows of a rare GPU call
                failed += 1
                rows.append((name, f"FAILED: {type(error).__name__}: {str(error)[:200]}", "", "", ""))
            print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print("| stage | throughput | data wait | peak memory | notes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
