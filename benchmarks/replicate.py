"""The paper's comparison on the demo's data (issue 12): each row its own pretraining, equal budget.

Rows (every pretraining ``--steps`` optimiser steps of ``--batch-size`` clips, the same training
crops, lr 5e-4 with 10 % warm-up and cosine decay, seed 0; ``benchmarks/augment_grid.py`` holds the
shared loop and data):

    mast_random        MAST-tiny, random init (no pretraining)
    mast_ssmast        MAST-tiny, SS-MAST without patch-drop
    mast_ssmast_drop   MAST-tiny, SS-MAST with patch-drop 0.2 (the method's setting)
    ast_random         AST-tiny (16 x 16 patches, stride 16), random init
    ast_ssast          AST-tiny, SSAST (16 of its 48 patches masked per clip, clean spectrograms)
    ast_ssmast         AST-tiny, SS-MAST with patch-drop 0.2
    cnn_supervised     a small CNN trained from scratch with the keyword labels (reference)

SS-MAST rows use the chain of ``mast_core.views.AugmentSettings`` with 5-frame time masks (5 % of
1 s, as the demo; docs/augmentation.md). Two
protocols per encoder: **linear** (frozen clip embeddings, a linear probe whose lr and weight decay
are chosen on validation; keywords on 1 s, languages on their first 3 s) and **fine-tune** on the
keywords (encoder and a linear head, ``--finetune-epochs`` epochs, the encoder's learning rate
chosen from two on the best validation epoch). Every choice is made on validation; each row's test
split is scored once per protocol, with a 95 % bootstrap interval over the test clips.

    python benchmarks/replicate.py --work /tmp/mast-grid              # every row, 2 at a time
    python benchmarks/replicate.py --work /tmp/mast-grid --table      # the table of the rows done

Rows are saved as ``WORK/replicate/steps<N>-batch<B>-seed<S>/<row>.json`` and reused unless ``--again``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment_grid import (  # noqa: E402
    add_row_arguments,
    base_command,
    bootstrap_interval,
    chosen_rows,
    finished_rows,
    load_clips,
    probe,
    run_row_processes,
    statistics,
    train_objective,
)
from synth import cnn_accuracy  # noqa: E402

from mast_core import SSAST, SSMAST  # noqa: E402
from mast_core.ast import ast_tiny  # noqa: E402
from mast_core.features import log_mel, normalize  # noqa: E402
from mast_core.finetune import EncoderClassifier, layer_decay_groups, lr_factor, scale_learning_rates  # noqa: E402
from mast_core.mast import mast_tiny  # noqa: E402
from mast_core.views import AugmentSettings, ViewMaker, objective_views  # noqa: E402
from pipelines.data.synth import SynthSettings, synthesize  # noqa: E402

FRAMES = 98  # 1 s crops, the demo's pretraining length
SSAST_MASKED = 16  # of the 8 x 6 = 48 patches of a 1 s clip: a third, as SSAST masks 400 of 1,212
ROWS = {
    "mast_random": ("mast", None, 0.0),
    "mast_ssmast": ("mast", "ssmast", 0.0),
    "mast_ssmast_drop": ("mast", "ssmast", 0.2),
    "ast_random": ("ast", None, 0.0),
    "ast_ssast": ("ast", "ssast", 0.0),
    "ast_ssmast": ("ast", "ssmast", 0.2),
    "cnn_supervised": (None, None, 0.0),
}
ENCODER_LRS = (1e-4, 1e-3)  # the fine-tune's encoder learning rates, one chosen per row on validation


def build(arch: str, objective: str | None, patch_drop: float):
    """The objective around a fresh encoder (an SS-MAST wrapper for the random-init rows: its encoder is used)."""
    encoder = mast_tiny(max_frames=FRAMES) if arch == "mast" else ast_tiny(max_frames=FRAMES, patch_stride=16)
    if objective == "ssast":
        return SSAST(encoder, num_masked=SSAST_MASKED)
    return SSMAST(encoder, queue_size=1024, patch_drop=patch_drop)


def spectrograms(entry: dict, stats: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised log-mel of a split's keyword clips and their valid frames."""
    spec = normalize(log_mel(entry["waves"].float() / 32768.0), *stats)
    frames = torch.div(entry["lengths"] - 400, 160, rounding_mode="floor") + 1
    return spec, frames.clamp(min=16, max=spec.shape[-1])


def finetune(encoder, task: dict, stats: tuple[float, float], epochs: int, seed: int, progress) -> dict:
    """Fine-tune a copy of ``encoder`` with a linear head per encoder learning rate; the best validation
    epoch of the best rate is scored once on test."""
    data = {split: (*spectrograms(entry, stats), entry["labels"]) for split, entry in task["splits"].items()}

    def accuracy(model, split: str) -> torch.Tensor:
        spec, frames, labels = data[split]
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(spec[i : i + 128], frames[i : i + 128]) for i in range(0, len(labels), 128)])
        return (logits.argmax(1) == labels).double()

    runs = []
    for encoder_lr in ENCODER_LRS:
        torch.manual_seed(seed)
        model = EncoderClassifier(copy.deepcopy(encoder), task["classes"])
        optimizer = torch.optim.AdamW(layer_decay_groups(model, 1e-3, encoder_lr, 1.0, 1e-4))
        spec, frames, labels = data["train"]
        best = (-1.0, 0, None)
        for epoch in range(epochs):
            scale_learning_rates(optimizer, lr_factor(epoch, epochs, 1))
            model.train()
            for batch in torch.randperm(len(labels)).split(32):
                loss = F.cross_entropy(model(spec[batch], frames[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            score = float(accuracy(model, "validation").mean())
            if score > best[0]:
                best = (score, epoch + 1, copy.deepcopy(model.state_dict()))
        progress(f"fine-tune encoder lr {encoder_lr:g}: best validation {best[0]:.3f} at epoch {best[1]}")
        runs.append((best[0], encoder_lr, best[1], best[2], model))
    validation, encoder_lr, epoch, state, model = max(runs, key=lambda run: run[0])
    model.load_state_dict(state)
    correct = accuracy(model, "test")
    low, high = bootstrap_interval(correct, seed)
    return {
        "validation": validation,
        "test": float(correct.mean()),
        "test_low": low,
        "test_high": high,
        "encoder_lr": encoder_lr,
        "epoch": epoch,
    }


def run_row(name: str, args) -> dict:
    arch, objective, patch_drop = ROWS[name]
    root = Path(args.work) / "synth"
    progress = lambda line: print(f"[{name}] {line}", flush=True)
    started = time.perf_counter()
    if arch is None:  # the supervised reference: trained with labels, the best validation epoch scored on test
        keywords = cnn_accuracy("speech_commands", str(root / "speech_commands_synth"), FRAMES, args.cnn_epochs, classes="all")
        keywords["test_low"], keywords["test_high"] = bootstrap_interval(torch.tensor(keywords.pop("test_correct")), args.seed)
        progress(f"keywords: validation {keywords['validation']:.3f}, test {keywords['test']:.3f}")
        return {"row": name, "steps": 0, "finetune": keywords, "seconds": time.perf_counter() - started}
    clips = load_clips(root)
    stats = statistics(clips)
    torch.manual_seed(args.seed)
    model = build(arch, objective, patch_drop).train()
    result = {"row": name, "arch": arch, "objective": objective, "patch_drop": patch_drop, "steps": args.steps if objective else 0}
    if objective:
        # the chosen chain (augment_grid's gentle_full_normalized_independent): time masks at 5 % of the clip
        maker: ViewMaker = objective_views(model, *stats, AugmentSettings(time_mask=5), seed=args.seed)
        result.update(train_objective(model, maker, clips, args.steps, args.batch_size, args.seed, 5e-4, 0.1, progress))
    result["linear"] = {task: probe(model.encoder, clips[task], stats, args.seed) for task in ("keywords", "languages")}
    for task, score in result["linear"].items():
        progress(f"linear {task}: validation {score['validation']:.3f}, test {score['test']:.3f}")
    result["finetune"] = finetune(model.encoder, clips["keywords"], stats, args.finetune_epochs, args.seed, progress)
    result["seconds"] = time.perf_counter() - started
    return result


def cell(score: dict | None) -> str:
    if not score:
        return ""
    interval = f" ({100 * score['test_low']:.1f}-{100 * score['test_high']:.1f})" if "test_low" in score else ""
    return f"{100 * score['test']:.1f}{interval}"


def table(results: list[dict]) -> str:
    lines = [
        "| row | pretraining | final loss (at 10 %) | query_std | keywords linear | keywords fine-tune | languages linear | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        trained = f"{r['final_loss']:.2f} ({r['loss_at_10pct']:.2f})" if r.get("steps") else ""
        spread = f"{r['final_query_std']:.3f}" if r.get("final_query_std") is not None else ""
        what = f"{r['objective']}{' + patch-drop' if r.get('patch_drop') else ''}, {r['steps']} steps" if r.get("steps") else "none"
        linear = r.get("linear", {})
        lines.append(
            f"| {r['row']} | {what} | {trained} | {spread} | {cell(linear.get('keywords'))} | {cell(r['finetune'])} | "
            f"{cell(linear.get('languages'))} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_row_arguments(parser, ROWS, "rows run at once, one torch thread each")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--cnn-epochs", type=int, default=20)
    args = parser.parse_args()
    rows = chosen_rows(parser, args, ROWS)
    results_dir = Path(args.work) / "replicate" / f"steps{args.steps}-batch{args.batch_size}-seed{args.seed}"
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.only:
        torch.set_num_threads(1)
        result = run_row(args.only, args)
        (results_dir / f"{args.only}.json").write_text(json.dumps(result, indent=1))
        return
    if not args.table:
        started = time.perf_counter()
        synthesize(Path(args.work) / "synth", replace(SynthSettings(), workers=2))
        todo = [name for name in rows if args.again or not (results_dir / f"{name}.json").exists()]
        todo.sort(key=lambda name: ROWS[name][0] != "ast")  # the longest rows first
        options = ("--finetune-epochs", str(args.finetune_epochs), "--cnn-epochs", str(args.cnn_epochs))
        run_row_processes(base_command(__file__, args, *options), todo, args.jobs)
        print(f"replication: {time.perf_counter() - started:.0f} s wall", flush=True)
    done = finished_rows(results_dir, rows)
    print(f"\n{args.steps} steps of batch {args.batch_size}, seed {args.seed}; test accuracy % (95 % bootstrap interval)\n")
    print(table(done))


if __name__ == "__main__":
    main()
