"""Effect of the embedding cache: a linear sweep of 8 trials with and without it, in one run.

With the cache (the product's path, `pipelines.evaluation.sweep.run_sweep`), the frozen encoder embeds every
clip once and all trials fit probes on the cached embeddings. Without it, every trial embeds the
clips itself before fitting its probe, as a naive sweep would. Both use the same shards, encoder,
search space and 8 trials. The data is ``--clips`` generated clips of ``--seconds`` (3 classes,
manifest layout, 60/20/20 splits), ingested first.

    python benchmarks/sweep_cache.py --clips 400 --seconds 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = """num_samples: 8
scheduler: {type: fifo}
space:
  lr: {loguniform: [1.0e-3, 3.0e-2]}
  batch_size: {choice: [32, 64]}
  max_epochs: 20
  patience: 5
"""


def generate(root: Path, clips: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    rows = ["path,label,split"]
    for index in range(clips):
        label = ("low", "high", "noise")[index % 3]
        t = np.arange(int(seconds * 16000)) / 16000
        tone = {"low": 200, "high": 1500}.get(label)
        wave = 0.05 * rng.standard_normal(t.size) + (0.3 * np.sin(2 * np.pi * tone * rng.uniform(0.9, 1.1) * t) if tone else 0)
        name = f"clips/{index:05d}.wav"
        (root / "clips").mkdir(parents=True, exist_ok=True)
        sf.write(root / name, wave.astype(np.float32), 16000)
        split = ("train", "train", "train", "validation", "test")[index % 5]
        rows.append(f"{name},{label},{split}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    import torch
    from ray import tune

    from mast_core.checkpoint import save_encoder
    from mast_core.mast import mast_tiny
    from mast_core.probe import fit_linear_probe
    from pipelines.common.config import load_config
    from pipelines.common.runtime import init_ray
    from pipelines.data.ingest import IngestSettings, ingest
    from pipelines.evaluation.embeddings import embed_task, load_embeddings
    from pipelines.evaluation.spaces import TuneSpace
    from pipelines.evaluation.sweep import run_sweep, split_rounds
    from pipelines.evaluation.tasks import load_task
    from pipelines.evaluation.trials import probe_settings

    work = Path(tempfile.mkdtemp(prefix="mast-sweep-cache-"))
    generate(work / "source", args.clips, args.seconds)
    init_ray()
    ingest("manifest", work / "source", work / "shards", settings=IngestSettings(), progress=lambda line: None)
    frames = int(args.seconds * 100) - 2
    (work / "bench.yaml").write_text(
        f"name: bench\ndataset: manifest\nshards: {work / 'shards'}\nframes_per_clip: {frames}\n"
        "splits: {train: train, validation: validation, test: test}\n"
    )
    (work / "space.yaml").write_text(SPACE)
    task, space = load_task(work / "bench.yaml"), load_config(TuneSpace, work / "space.yaml")
    torch.manual_seed(0)
    encoder = save_encoder(mast_tiny(max_frames=frames), work / "encoder")

    print("sweep with the cache ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    summary = run_sweep(
        task, encoder, space, storage=work / "tune", tracking_uri=f"sqlite:///{work / 'mlflow.db'}", progress=lambda line: None
    )
    with_cache = time.perf_counter() - started

    print("sweep that embeds in every trial ...", file=sys.stderr, flush=True)

    def trial_without_cache(config):
        path, _ = embed_task(
            task.shards,
            encoder,
            frames,
            progress=lambda line: None,
            target=work / "scratch" / f"{tune.get_context().get_trial_id()}.parquet",
        )
        selection, _ = split_rounds(task, load_embeddings(path))
        probe = fit_linear_probe(*selection[0]["train"], *selection[0]["validation"], probe_settings(config))
        tune.report({"val_accuracy": probe.val_accuracy})

    started = time.perf_counter()
    tuner = tune.Tuner(
        # half a CPU per trial and two at a time: each trial's decoding actor and read tasks need
        # CPUs of their own, or nested Ray Data would wait for ever
        tune.with_resources(trial_without_cache, {"CPU": 0.5}),
        param_space=space.tune_space(),
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", num_samples=space.num_samples, max_concurrent_trials=2),
        run_config=tune.RunConfig(name="no-cache", storage_path=str(work / "tune")),
    )
    results = tuner.fit()
    without_cache = time.perf_counter() - started
    shutil.rmtree(work / "scratch", ignore_errors=True)

    print(f"\nlinear sweep, 8 trials, {args.clips} clips of {args.seconds:g} s, mast_tiny encoder\n")
    print("| sweep | wall time (s) | trials | best val accuracy |")
    print("|---|---|---|---|")
    print(f"| embeddings cached (computed once) | {with_cache:.1f} | {summary['trials']} | {summary['val_accuracy']:.3f} |")
    best = results.get_best_result().metrics["val_accuracy"]
    print(f"| embeddings computed in every trial | {without_cache:.1f} | {len(results)} | {best:.3f} |")
    print(f"\nspeed-up from the cache: {without_cache / with_cache:.1f}x (the cached run includes computing the cache)")


if __name__ == "__main__":
    main()
