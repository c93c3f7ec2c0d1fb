"""SS-MAST augmentation ablation on the demo's data: each row its own pretraining, equal budget.

Which view chain lets SS-MAST learn on the demo's synthetic keywords and languages (issue 12)?
Every row pretrains a fresh ``mast_tiny`` with the SS-MAST objective on the same clips (the
keyword and language training splits of ``mast synth``'s default sets, 1 s crops, batch 32,
queue 1,024, the same number of steps), through the same :class:`mast_core.views.ViewMaker` the
Ray Train workers use, in one process without Ray. Then a linear probe (``mast_core.probe``) on
the frozen clip embeddings: the probe's settings are chosen on the validation split, and the
test split is scored once, with a 95 % bootstrap interval over test clips.

    python benchmarks/augment_grid.py --work /tmp/mast-grid                 # every row, 2 at a time
    python benchmarks/augment_grid.py --work /tmp/mast-grid --rows full_log_power_independent,full_normalized_shared
    python benchmarks/augment_grid.py --work /tmp/mast-grid --table         # the table of the rows done

Each finished row is saved as ``WORK/grid/steps<N>-batch<B>-seed<S>/<row>.json`` and reused unless ``--again``. The table's
collapse columns: ``loss@10%`` (mean loss over the steps around 10 % of training), ``final loss``
(mean over the last 5 % of steps; chance is ``2 ln(queue + 1)`` = 13.86), ``query_std`` over the
last 5 % (0.0625 = well spread over the 256 projection dims, 0 = collapsed).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mast_core import SSMAST  # noqa: E402
from mast_core.features import log_mel, normalize  # noqa: E402
from mast_core.mast import mast_tiny  # noqa: E402
from mast_core.optim import weight_decay_groups  # noqa: E402
from mast_core.probe import ProbeSettings, fit_linear_probe  # noqa: E402
from mast_core.ssmast import momentum_schedule  # noqa: E402
from mast_core.views import AugmentSettings, ViewMaker  # noqa: E402
from pipelines.data.layouts import discover  # noqa: E402
from pipelines.data.synth import SynthSettings, synthesize  # noqa: E402

SAMPLES = 16000  # 1 s at 16 kHz: 98 log-mel frames, the demo's pretraining crop
LANGUAGE_SAMPLES = 48000  # the languages are probed on their first 3 s (the demo's 300 frames)
NO_CROP = dict(virtual_crop_scale=(1.0, 1.0), freq_scale=(1.0, 1.0), time_scale=(1.0, 1.0))
NO_MASKS = dict(freq_mask=0, time_mask=0)
MASKS = dict(freq_mask=24, time_mask=20)  # the demo's widths at 98 frames before issue 12
BYOLA_CROP = dict(virtual_crop_scale=(1.0, 1.5), freq_scale=(0.6, 1.5), time_scale=(0.6, 1.5))  # BYOL-A's ranges
# a crop that stretches by at most 10 % and narrow masks
GENTLE = dict(virtual_crop_scale=(1.0, 1.1), freq_scale=(0.9, 1.1), time_scale=(0.9, 1.1), freq_mask=12, time_mask=5)


@dataclass(frozen=True)
class Row:
    """One pretraining: the view chain and the optimisation around it."""

    augment: dict = field(default_factory=dict)  # AugmentSettings overrides
    lr: float = 5e-4
    warmup: float = 0.1  # fraction of the steps
    head: str = "linear"
    patch_drop: float = 0.2
    pretrain: bool = True  # False: the random-init reference


# Every row names all its choices (the defaults of AugmentSettings are the chosen row, so they
# must not leak into the others).
LOG_IND = dict(mixup_domain="log_power", mixup_partners="independent")
LOG_SHARED = dict(mixup_domain="log_power", mixup_partners="shared")
NORM_IND = dict(mixup_domain="normalized", mixup_partners="independent")
NORM_SHARED = dict(mixup_domain="normalized", mixup_partners="shared")

ROWS: dict[str, Row] = {
    "random_init": Row(pretrain=False),
    # the chain before issue 12: mix the log power with one partner per view, then normalise
    "full_log_power_independent": Row({**LOG_IND, **BYOLA_CROP, **MASKS}),
    "full_log_power_shared": Row({**LOG_SHARED, **BYOLA_CROP, **MASKS}),
    # BYOL-A's order: normalise, then mix
    "full_normalized_independent": Row({**NORM_IND, **BYOLA_CROP, **MASKS}),
    "full_normalized_shared": Row({**NORM_SHARED, **BYOLA_CROP, **MASKS}),
    "mixup_only_log_power": Row({**LOG_IND, **NO_CROP, **NO_MASKS}),
    "crop_and_masks": Row({"mixup_ratio": 0.0, **NORM_SHARED, **BYOLA_CROP, **MASKS}),
    # around the normalised chain: weaker mixing, a narrower crop, optimisation and head
    "full_normalized_shared_ratio0.2": Row({"mixup_ratio": 0.2, **NORM_SHARED, **BYOLA_CROP, **MASKS}),
    "full_normalized_independent_ratio0.2": Row({"mixup_ratio": 0.2, **NORM_IND, **BYOLA_CROP, **MASKS}),
    "full_normalized_shared_crop0.8": Row({**NORM_SHARED, **BYOLA_CROP, "freq_scale": (0.8, 1.2), "time_scale": (0.8, 1.2), **MASKS}),
    "full_normalized_shared_lr1e-3": Row({**NORM_SHARED, **BYOLA_CROP, **MASKS}, lr=1e-3),
    "full_normalized_shared_warmup0.2": Row({**NORM_SHARED, **BYOLA_CROP, **MASKS}, warmup=0.2),
    "full_normalized_shared_mlp": Row({**NORM_SHARED, **BYOLA_CROP, **MASKS}, head="mlp"),
    "full_normalized_shared_no_patch_drop": Row({**NORM_SHARED, **BYOLA_CROP, **MASKS}, patch_drop=0.0),
    # which of crop and masks costs the keywords, and a gentler full chain
    "mixup_only_normalized": Row({**NORM_IND, **NO_CROP, **NO_MASKS}),
    "mixup_and_masks_log_power": Row({**LOG_IND, **NO_CROP, **MASKS}),
    "mixup_and_crop_log_power": Row({**LOG_IND, **BYOLA_CROP, **NO_MASKS}),
    "gentle_full_log_power_independent": Row({**LOG_IND, **GENTLE}),
    "gentle_full_normalized_independent": Row({**NORM_IND, **GENTLE}),  # chosen: AugmentSettings' defaults
    "gentle_full_log_power_shared": Row({**LOG_SHARED, **GENTLE}),
}


def load_clips(root: Path) -> dict:
    """int16 waveforms and labels of both tasks, by split (keywords 1 s; languages their first 3 s)."""
    tasks = {"keywords": ("speech_commands", root / "speech_commands_synth", {"classes": "all"}, SAMPLES)}
    tasks["languages"] = ("voxforge", root / "voxforge_synth", {}, LANGUAGE_SAMPLES)
    clips = {}
    for task, (dataset, folder, options, samples) in tasks.items():
        layout = discover(dataset, folder, **options)
        index = {label: i for i, label in enumerate(layout.vocabulary)}
        by_split: dict[str, dict] = {}
        for record in layout.records:
            wave = sf.read(record.path, dtype="int16")[0][:samples]
            entry = by_split.setdefault(record.split, {"waves": [], "lengths": [], "labels": [], "ids": []})
            entry["lengths"].append(len(wave))
            entry["waves"].append(np.pad(wave, (0, samples - len(wave))))
            entry["labels"].append(index[record.labels[0]])
            entry["ids"].append(record.id)
        for entry in by_split.values():
            entry["waves"] = torch.from_numpy(np.stack(entry["waves"]))
            entry["lengths"] = torch.tensor(entry["lengths"])
            entry["labels"] = torch.tensor(entry["labels"])
        clips[task] = {"splits": by_split, "classes": len(layout.vocabulary)}
    return clips


def training_crops(clips: dict, epoch: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Every training clip of both tasks once, as a 1 s crop (a fresh random offset each epoch), shuffled."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    waves, ids = [clips["keywords"]["splits"]["train"]["waves"]], list(clips["keywords"]["splits"]["train"]["ids"])
    languages = clips["languages"]["splits"]["train"]
    offsets = (torch.rand(len(languages["ids"]), generator=generator) * (languages["lengths"] - SAMPLES).clamp(min=0)).long()
    waves.append(torch.stack([wave[offset : offset + SAMPLES] for wave, offset in zip(languages["waves"], offsets.tolist())]))
    ids += [f"{clip}@{offset}" for clip, offset in zip(languages["ids"], offsets.tolist())]
    order = torch.randperm(len(ids), generator=generator)
    return torch.cat(waves)[order], [ids[i] for i in order.tolist()]


def statistics(clips: dict) -> tuple[float, float]:
    """Dataset mean and std of the log-mel over the keyword training clips (as ingest's stats)."""
    spec = log_mel(clips["keywords"]["splits"]["train"]["waves"][:512].float() / 32768.0)
    return float(spec.mean()), float(spec.std())


def pretrain(row: Row, clips: dict, stats: tuple[float, float], steps: int, batch: int, seed: int, progress) -> tuple[SSMAST, dict]:
    torch.manual_seed(seed)
    model = SSMAST(mast_tiny(max_frames=98), head=row.head, queue_size=1024, patch_drop=row.patch_drop).train()
    if not row.pretrain:
        return model, {}
    maker = ViewMaker(*stats, AugmentSettings(**row.augment), seed=seed, views=2)
    return model, train_objective(model, maker, clips, steps, batch, seed, row.lr, row.warmup, progress)


def train_objective(model, maker: ViewMaker, clips: dict, steps: int, batch: int, seed: int, lr: float, warmup: float, progress) -> dict:
    """``steps`` optimiser steps of any :class:`~mast_core.contracts.Objective` on the training crops
    (AdamW, weight decay 0.05 on weight matrices, linear warm-up over the ``warmup`` fraction, cosine
    decay); the collapse summary of its loss (and ``query_std`` where the objective reports it)."""
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.05), lr=lr)
    warmup = max(1, round(warmup * steps))
    factor = lambda step: (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    history: dict[str, list[float]] = {}
    step, epoch, started = 0, 0, time.perf_counter()
    while step < steps:
        waves, ids = training_crops(clips, epoch, seed)
        for start in range(0, len(ids) - batch + 1, batch):
            views = dict(zip(model.views, maker(waves[start : start + batch], ids[start : start + batch], epoch)))
            loss, stats_now = model(views)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            optimizer.step()
            schedule.step()
            model.after_step(step, steps, momentum_schedule(step, steps))
            for key in ("loss", "query_std"):
                if key in stats_now:
                    history.setdefault(key, []).append(float(stats_now[key]))
            step += 1
            if step % max(steps // 10, 1) == 0:
                spread = f" query_std {np.mean(history['query_std'][-20:]):.3f}" if "query_std" in history else ""
                progress(f"step {step}/{steps} loss {np.mean(history['loss'][-20:]):.2f}{spread} ({time.perf_counter() - started:.0f} s)")
            if step == steps:
                break
        epoch += 1
    tail = max(steps // 20, 1)
    tenth = max(steps // 10, 1)
    around = history["loss"][max(tenth - tail, 0) : tenth + tail]
    return {
        "loss_at_10pct": float(np.mean(around)),
        "final_loss": float(np.mean(history["loss"][-tail:])),
        "min_loss": float(min(np.convolve(history["loss"], np.ones(tail) / tail, mode="valid"))),
        "final_query_std": float(np.mean(history["query_std"][-tail:])) if "query_std" in history else None,
        "pretrain_seconds": time.perf_counter() - started,
        "loss_curve": [float(np.mean(history["loss"][i : i + tail])) for i in range(0, steps, tail)],
    }


def bootstrap_interval(correct: torch.Tensor, seed: int, resamples: int = 2000) -> tuple[float, float]:
    """95 % interval of the accuracy of per-clip outcomes ``correct`` (0/1), bootstrap over the clips."""
    correct = correct.double()
    generator = torch.Generator().manual_seed(seed)
    resampled = correct[torch.randint(len(correct), (resamples, len(correct)), generator=generator)].mean(1)
    low, high = torch.quantile(resampled, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return low, high


@torch.no_grad()
def embed(encoder, entry: dict, stats: tuple[float, float]) -> torch.Tensor:
    encoder.eval()
    out = []
    for start in range(0, len(entry["labels"]), 128):
        waves = entry["waves"][start : start + 128].float() / 32768.0
        spec = normalize(log_mel(waves), *stats)
        frames = torch.div(entry["lengths"][start : start + 128] - 400, 160, rounding_mode="floor") + 1
        out.append(encoder(spec, frames.clamp(min=16, max=spec.shape[-1])))
    return torch.cat(out)


def probe(encoder, task: dict, stats: tuple[float, float], seed: int) -> dict:
    """Probe settings chosen on validation; test scored once, with a bootstrap 95 % interval."""
    x = {split: embed(encoder, entry, stats) for split, entry in task["splits"].items()}
    y = {split: entry["labels"] for split, entry in task["splits"].items()}
    candidates = []
    for lr in (1e-3, 1e-2):
        for decay in (1e-4, 1e-2):
            fitted = fit_linear_probe(
                x["train"], y["train"], x["validation"], y["validation"], ProbeSettings(lr=lr, weight_decay=decay, seed=seed)
            )
            candidates.append((fitted.accuracy(x["validation"], y["validation"]), lr, decay, fitted))
    validation, lr, decay, chosen = max(candidates, key=lambda item: item[0])
    correct = (chosen.logits(x["test"]).argmax(1) == y["test"]).double()
    low, high = bootstrap_interval(correct, seed)
    return {
        "validation": validation,
        "test": float(correct.mean()),
        "test_low": low,
        "test_high": high,
        "lr": lr,
        "weight_decay": decay,
        "test_clips": len(correct),
    }


def run_row(name: str, args) -> dict:
    row = ROWS[name]
    clips = load_clips(Path(args.work) / "synth")
    stats = statistics(clips)
    progress = lambda line: print(f"[{name}] {line}", flush=True)
    model, summary = pretrain(row, clips, stats, args.steps, args.batch_size, args.seed, progress)
    result = {"row": name, "settings": asdict(row), "steps": args.steps if row.pretrain else 0, **summary}
    for task in ("keywords", "languages"):
        result[task] = probe(model.encoder, clips[task], stats, args.seed)
        progress(f"{task}: validation {result[task]['validation']:.3f}, test {result[task]['test']:.3f}")
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| row | loss@10% | final loss | query_std | keywords val | keywords test (95% CI) | languages val | languages test (95% CI) | pretrain s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(score: dict) -> str:
        return f"{100 * score['test']:.1f} ({100 * score['test_low']:.1f}-{100 * score['test_high']:.1f})"

    for r in results:
        if r["steps"]:
            numbers = f"{r['loss_at_10pct']:.2f} | {r['final_loss']:.2f} | {r['final_query_std']:.3f}"
        else:
            numbers = " | | "
        scores = f"{100 * r['keywords']['validation']:.1f} | {cell(r['keywords'])} | {100 * r['languages']['validation']:.1f} | {cell(r['languages'])}"
        lines.append(f"| {r['row']} | {numbers} | {scores} | {r.get('pretrain_seconds', 0):.0f} |")
    return "\n".join(lines)


def add_row_arguments(parser: argparse.ArgumentParser, rows, jobs_help: str) -> None:
    """The options every row-per-process benchmark here takes (this one and ``replicate.py``)."""
    parser.add_argument("--work", default="/tmp/mast-grid", help="folder for the synthetic sets and the results")
    parser.add_argument("--rows", default=",".join(rows), help=f"comma-separated rows of: {', '.join(rows)}")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help=jobs_help)
    parser.add_argument("--again", action="store_true", help="rerun rows that have results")
    parser.add_argument("--table", action="store_true", help="only print the table of the rows done")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one row, in this process (the workers)


def chosen_rows(parser: argparse.ArgumentParser, args, rows) -> list[str]:
    """The ``--rows`` asked for; an unknown name stops with the list of known ones."""
    chosen = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in rows]
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(rows)}")
    return chosen


def base_command(script: str, args, *options: str) -> list[str]:
    """The command line of a row's own process, without ``--only ROW``."""
    return [
        sys.executable,
        script,
        "--work",
        args.work,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        *options,
    ]


def run_row_processes(command: list[str], todo: list[str], jobs: int) -> None:
    """Each row of ``todo`` in its own process (``command --only ROW``), ``jobs`` at a time, in order."""
    todo, running = list(todo), []
    while todo or running:
        while todo and len(running) < jobs:
            running.append(subprocess.Popen([*command, "--only", todo.pop(0)]))
        time.sleep(1)
        for process in [p for p in running if p.poll() is not None]:
            running.remove(process)
            if process.returncode:
                print(f"a row failed: {process.args[-1]} (exit {process.returncode})", file=sys.stderr)


def finished_rows(folder: Path, rows: list[str]) -> list[dict]:
    """The saved results of the rows that have one, in the order asked."""
    return [json.loads((folder / f"{name}.json").read_text()) for name in rows if (folder / f"{name}.json").exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_row_arguments(parser, ROWS, "rows pretrained at once, one torch thread each")
    args = parser.parse_args()
    rows = chosen_rows(parser, args, ROWS)
    results_dir = Path(args.work) / "grid" / f"steps{args.steps}-batch{args.batch_size}-seed{args.seed}"
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.only:
        torch.set_num_threads(1)
        result = run_row(args.only, args)
        (results_dir / f"{args.only}.json").write_text(json.dumps(result, indent=1))
        return
    if not args.table:
        synthesize(Path(args.work) / "synth", replace(SynthSettings(), workers=2))
        todo = [name for name in rows if args.again or not (results_dir / f"{name}.json").exists()]
        run_row_processes(base_command(__file__, args), todo, args.jobs)
    done = finished_rows(results_dir, rows)
    done.sort(key=lambda result: -result["keywords"]["validation"])  # selection: keyword validation accuracy
    print(f"\n{args.steps} steps of batch {args.batch_size}, mast_tiny, queue 1024, seed {args.seed}\n")
    print(table(done))


if __name__ == "__main__":
    main()
