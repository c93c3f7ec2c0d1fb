"""`mast synth` speed and realism: clips/s of synthesis, and how far a trivial probe gets.

Synthesises the datasets at the given sizes (the defaults of ``mast synth`` unless told otherwise;
all three tasks, the optional NSynth-layout instruments included)
into ``--work`` from scratch, timing it, then reads them back through ``pipelines.data.layouts`` and
trains a linear probe (multinomial logistic regression, torch, L2 chosen on the validation split)
on simple clip statistics: the per-mel-bin mean and standard deviation of the log-mel
spectrogram (``mast_core.features.log_mel``, 128 bins), the duration and the RMS level. It is
scored on the test split (speakers never seen in training). A realistic set keeps this far
from 100 %: a feature set that ignores time cannot tell the words or languages apart (the
instrument families are easier: timbre shows in the average spectrum, as in the real NSynth).

    python benchmarks/synth.py                     # default sizes, 2 workers
    python benchmarks/synth.py --reuse --cnn-epochs 20   # + a small CNN from scratch (learnability)
    python benchmarks/synth.py --work /tmp/mast-synth --keyword-speakers 10 --clips-per-word 20
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mast_core.features import log_mel  # noqa: E402
from pipelines.data.layouts import discover  # noqa: E402
from pipelines.data.synth import TASKS, SynthSettings, synthesize  # noqa: E402

DECAYS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def clip_features(waves: list[np.ndarray], rate: int) -> np.ndarray:
    """Per-bin mean and std of the log-mel, duration (s) and RMS (dBFS): 258 numbers per clip.

    Clips of equal length are batched through ``log_mel`` (all keyword clips are 1 s)."""
    out = np.zeros((len(waves), 2 * 128 + 2))
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(waves):
        by_length.setdefault(wave.size, []).append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), 256):
            batch = indices[start : start + 256]
            spec = log_mel(torch.from_numpy(np.stack([waves[i] for i in batch])), sample_rate=rate)
            out[batch, :128] = spec.mean(2).numpy()
            out[batch, 128:256] = spec.std(2).numpy()
    out[:, 256] = [w.size / rate for w in waves]
    out[:, 257] = [10 * np.log10(max(float(np.mean(w.astype(np.float64) ** 2)), 1e-12)) for w in waves]
    return out


def dataset_features(dataset: str, root: str, **options) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    layout = discover(dataset, root, **options)
    index = {label: i for i, label in enumerate(layout.vocabulary)}
    waves = [sf.read(record.path, dtype="float32")[0] for record in layout.records]
    features = clip_features(waves, 16000)
    splits = np.asarray([record.split for record in layout.records])
    labels = np.asarray([index[record.labels[0]] for record in layout.records])
    return (
        {s: features[splits == s] for s in ("train", "validation", "test")},
        {s: labels[splits == s] for s in ("train", "validation", "test")},
        len(layout.vocabulary),
    )


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, decay: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], classes, dtype=torch.float64)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + decay * probe.weight.square().sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def probe_accuracy(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], classes: int) -> dict[str, float]:
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    x = {s: torch.from_numpy((f - mean) / std) for s, f in features.items()}
    y = {s: torch.from_numpy(v).long() for s, v in labels.items()}

    def accuracy(probe: torch.nn.Linear, split: str) -> float:
        with torch.no_grad():
            return float((probe(x[split]).argmax(1) == y[split]).double().mean())

    scored = [(accuracy(p, "validation"), decay, p) for decay in DECAYS for p in [fit_probe(x["train"], y["train"], classes, decay)]]
    best_val, decay, probe = max(scored, key=lambda item: (item[0], item[1]))
    return {"train": accuracy(probe, "train"), "validation": best_val, "test": accuracy(probe, "test"), "decay": decay}


def cnn_accuracy(dataset: str, root: str, frames: int, epochs: int, **options) -> dict[str, float]:
    """Learnability check: a small CNN (4 conv blocks, ~60 k parameters) trained from scratch on
    the log-mel (cropped / padded to ``frames``); test accuracy at the best validation epoch, and that
    epoch's outcome per test clip (``test_correct``, 1 = right)."""
    torch.manual_seed(0)
    layout = discover(dataset, root, **options)
    index = {label: i for i, label in enumerate(layout.vocabulary)}
    specs: dict[str, list[torch.Tensor]] = {s: [] for s in ("train", "validation", "test")}
    labels: dict[str, list[int]] = {s: [] for s in specs}
    for record in layout.records:
        spec = log_mel(torch.from_numpy(sf.read(record.path, dtype="float32")[0]))[:, :frames]
        specs[record.split].append(torch.nn.functional.pad(spec, (0, frames - spec.shape[1]), value=float(spec.min())))
        labels[record.split].append(index[record.labels[0]])
    train = torch.stack(specs["train"])
    mean, std = train.mean(), train.std()
    x = {s: ((torch.stack(v) - mean) / std).unsqueeze(1) for s, v in specs.items()}
    y = {s: torch.tensor(v) for s, v in labels.items()}

    def block(cin: int, cout: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(), torch.nn.MaxPool2d(2)
        )

    net = torch.nn.Sequential(
        block(1, 16),
        block(16, 32),
        block(32, 64),
        block(64, 64),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, len(index)),
    )
    steps = (len(y["train"]) + 31) // 32
    optimizer = torch.optim.Adam(net.parameters(), 2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * steps)
    best = (-1.0, 0.0, [])
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y["train"]))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss = torch.nn.functional.cross_entropy(net(x["train"][batch]), y["train"][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            correct = {
                s: (torch.cat([net(x[s][i : i + 256]) for i in range(0, len(y[s]), 256)]).argmax(1) == y[s]) for s in ("validation", "test")
            }
        if float(correct["validation"].float().mean()) > best[0]:  # the first best validation epoch
            best = (float(correct["validation"].float().mean()), float(correct["test"].float().mean()), correct["test"].int().tolist())
    return {"validation": best[0], "test": best[1], "test_correct": best[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SynthSettings()
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-synth-bench"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keyword-speakers", type=int, default=defaults.keyword_speakers)
    parser.add_argument("--clips-per-word", type=int, default=defaults.clips_per_word)
    parser.add_argument("--language-speakers", type=int, default=defaults.language_speakers)
    parser.add_argument("--clips-per-speaker", type=int, default=defaults.clips_per_speaker)
    parser.add_argument("--instruments-per-family", type=int, default=defaults.instruments_per_family)
    parser.add_argument("--notes-per-instrument", type=int, default=defaults.notes_per_instrument)
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)} (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep an earlier synthesis in --work (no timing then)")
    parser.add_argument(
        "--cnn-epochs",
        type=int,
        default=0,
        help="also train a small CNN from scratch for this many epochs per dataset (learnability; minutes on 2 cores; default 0 = off)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)

    settings = SynthSettings(
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        instruments_per_family=args.instruments_per_family,
        notes_per_instrument=args.notes_per_instrument,
        keyword_speakers=args.keyword_speakers,
        clips_per_word=args.clips_per_word,
        language_speakers=args.language_speakers,
        clips_per_speaker=args.clips_per_speaker,
        seed=args.seed,
        workers=args.workers,
    )
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)
    started = time.perf_counter()
    result = synthesize(args.work, settings, progress=lambda line: print(line, file=sys.stderr))
    wall = time.perf_counter() - started

    rows = []
    for name, title, options, chance, frames in (
        ("speech_commands", "keywords (SC V2 layout, 35 words)", {"classes": "all"}, 1 / 35, 98),
        ("voxforge", "languages (VoxForge layout, 6)", {}, 1 / 6, 300),
        ("nsynth", "instrument families (NSynth layout, 11)", {}, 1 / 11, 398),
    ):
        if name not in result:
            continue
        info = result[name]
        t0 = time.perf_counter()
        features, labels, classes = dataset_features(name, info["path"], **options)
        probe = probe_accuracy(features, labels, classes)
        print(f"{name}: features + probe in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if args.cnn_epochs > 0:
            t0 = time.perf_counter()
            probe["cnn"] = cnn_accuracy(name, info["path"], frames, args.cnn_epochs, **options)["test"]
            print(f"{name}: CNN ({args.cnn_epochs} epochs) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows.append((title, info, probe, chance, classes))

    print(
        f"\n`mast synth` at {args.workers} workers, seed {args.seed} (wall {wall:.1f} s for everything, "
        f"{'reused' if any(r[1]['reused'] for r in rows) else 'fresh'})\n"
    )
    cnn = args.cnn_epochs > 0
    print(
        "| dataset | clips (train/val/test) | speakers / instruments | synthesis s | clips/s | probe train | probe val "
        f"| probe test |{' CNN test |' if cnn else ''} chance |"
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if cnn else "") + "---|")
    for title, info, probe, chance, _classes in rows:
        split = info["per_split"]
        print(
            f"| {title} | {info['clips']} ({split.get('train', 0)}/{split.get('validation', 0)}/{split.get('test', 0)}) "
            f"| {info['speakers']} | {info['seconds']:.1f} | {info['clips'] / info['seconds']:.0f} "
            f"| {100 * probe['train']:.1f} % | {100 * probe['validation']:.1f} % | {100 * probe['test']:.1f} % "
            + (f"| {100 * probe['cnn']:.1f} % " if cnn else "")
            + f"| {100 * chance:.1f} % |"
        )
    total = sum(r[1]["clips"] for r in rows)
    print(
        f"\noverall: {total} clips in {sum(r[1]['seconds'] for r in rows):.1f} s of synthesis "
        f"= {total / sum(r[1]['seconds'] for r in rows):.0f} clips/s (noise banks included)"
    )
    print(
        "probe: logistic regression on per-mel-bin log-mel mean + std, duration, RMS (258 features), "
        f"L2 from {DECAYS} chosen on validation; test speakers / instruments unseen in training"
    )
    if cnn:
        print(
            f"CNN: 4 conv blocks (16-32-64-64) + linear, from scratch, Adam one-cycle 2e-3, {args.cnn_epochs} epochs, "
            "test accuracy at the best validation epoch"
        )


if __name__ == "__main__":
    main()
