"""Dataset assembly: one folder per task in its published layout, stamped for reuse.

A task's folder holds its clips, its background recordings (not for instruments), the index of
its layout (Speech Commands' validation / testing lists, the VoxForge manifest, NSynth's
``examples.json``) and ``synth.json``, the stamp that lets a later run with the same settings
reuse the folder. While a folder is written it carries a ``.synth-partial`` mark.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data.layouts import NSYNTH_FAMILIES  # the family order of the NSynth reader (instrument_family index)
from pipelines.data.synth.espeak import espeak
from pipelines.data.synth.instruments import NSYNTH_FOLDERS, NSYNTH_SOURCES, Instrument
from pipelines.data.synth.plans import PLAN_OF_TASK, ClipSpec, Speaker
from pipelines.data.synth.render import noise_bank, render_clips, write_bank
from pipelines.data.synth.settings import (
    DATASET_OF_TASK,
    FOLDER_OF_TASK,
    FORMAT_VERSION,
    PARTIAL_MARK,
    SAMPLE_RATE,
    STAMP_FILE,
    TASKS,
    SynthSettings,
    check_request,
)

Sources = Sequence[Speaker] | Sequence[Instrument]


# ---------------------------------------------------------------------------------------------
# The index of each layout
# ---------------------------------------------------------------------------------------------


def _split_of(sources: Sources, clips: list[ClipSpec]) -> dict[str, str]:
    return {spec.rel: sources[spec.speaker].split for spec in clips}


def _write_keyword_lists(folder: Path, speakers: Sources, clips: list[ClipSpec]) -> None:
    """Speech Commands: ``validation_list.txt`` and ``testing_list.txt`` (train is the rest)."""
    split_of = _split_of(speakers, clips)
    for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        (folder / name).write_text("".join(f"{rel}\n" for rel in sorted(r for r, s in split_of.items() if s == split)))


def _write_voxforge_csv(folder: Path, speakers: Sources, clips: list[ClipSpec]) -> None:
    """VoxForge: ``voxforge.csv``, one row per clip."""
    buffer = io.StringIO()
    table = csv.writer(buffer, lineterminator="\n")
    table.writerow(["path", "language", "split", "speaker", "sentence", "text"])
    for spec in clips:
        speaker = speakers[spec.speaker]
        table.writerow([spec.rel, speaker.language, speaker.split, speaker.id, int(Path(spec.rel).stem[1:]), spec.text])
    (folder / "voxforge.csv").write_text(buffer.getvalue(), encoding="utf-8")


def _write_nsynth_examples(folder: Path, instruments: Sources, clips: list[ClipSpec]) -> None:
    """NSynth: ``nsynth-{train,valid,test}/examples.json``, the notes of each split by name."""
    by_note = {spec.text: spec for spec in clips}
    for split, name in NSYNTH_FOLDERS.items():
        examples = {}
        for note, spec in sorted(by_note.items()):
            instrument = instruments[spec.speaker]
            if instrument.split != split:
                continue
            pitch, velocity = (int(part) for part in note.rsplit("-", 2)[1:])
            examples[note] = {
                "note": len(examples),
                "note_str": note,
                "instrument": instrument.index,
                "instrument_str": instrument.name,
                "pitch": pitch,
                "velocity": velocity,
                "sample_rate": SAMPLE_RATE,
                "qualities": [0] * 10,
                "qualities_str": [],
                "instrument_family": NSYNTH_FAMILIES.index(instrument.family),
                "instrument_family_str": instrument.family,
                "instrument_source": NSYNTH_SOURCES.index(instrument.source),
                "instrument_source_str": instrument.source,
            }
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "examples.json").write_text(json.dumps(examples, indent=1) + "\n", encoding="utf-8")


_INDEX_OF_TASK = {"keywords": _write_keyword_lists, "languages": _write_voxforge_csv, "instruments": _write_nsynth_examples}


# ---------------------------------------------------------------------------------------------
# The stamp
# ---------------------------------------------------------------------------------------------


def _stamp_matches(folder: Path, key: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The stamp of a finished dataset written with these settings and this espeak-ng, else None."""
    stamp_path = folder / STAMP_FILE
    if (folder / PARTIAL_MARK).exists() or not stamp_path.is_file():
        return None
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stamp.get("format") != FORMAT_VERSION or stamp.get("key") != key:
        return None
    if stamp.get("espeak_ng") != version:
        return None
    audio = sum(1 for _ in folder.rglob("*.wav"))
    return stamp if audio == stamp.get("audio_files") else None


def _describe(source: Speaker | Instrument) -> dict[str, Any]:
    """A JSON-ready description of a speaker or an instrument for the stamp."""
    if isinstance(source, Speaker):
        return asdict(source)
    params = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in source.params.items()}
    return {"id": source.name, "split": source.split, "family": source.family, "source": source.source, "params": params}


def _summary(folder: Path, stamp: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(folder),
        "clips": stamp["clips"],
        "per_split": stamp["per_split"],
        "speakers": len(stamp["speakers"]),  # instruments for the NSynth layout
        "seconds": stamp["seconds"],
        "clips_per_second": stamp["clips_per_second"],
    }


# ---------------------------------------------------------------------------------------------
# One task, all tasks
# ---------------------------------------------------------------------------------------------


def _write_background(task: str, folder: Path, seed: int, workers: int, progress: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The task's noise bank, also written into the dataset (none for instruments)."""
    if task == "instruments":
        return {}
    task_id = TASKS.index(task)
    bank = noise_bank(seed, task_id, workers)
    bank_folder = folder / ("_background_noise_" if task == "keywords" else "noise")
    write_bank(bank_folder, bank, np.random.default_rng([seed, task_id, 6]))
    progress(f"[synth] {task}: background recordings written to {bank_folder} ({', '.join(bank)})")
    return bank


def _clip_meter(task: str, total: int, progress: Callable[[str], None]) -> Callable[[list], None]:
    """A callback for each finished job that reports the clips done, at most every 5 s."""
    state = {"clips": 0, "last": 0.0}
    clip_start = time.perf_counter()

    def done(result: list) -> None:
        state["clips"] += len(result)
        now = time.perf_counter()
        if now - state["last"] > 5.0 or state["clips"] == total:
            state["last"] = now
            rate = state["clips"] / max(now - clip_start, 1e-9)
            progress(f"[synth] {task}: {state['clips']}/{total} clips ({rate:.0f} clips/s)")

    return done


def _synthesize_task(task: str, out: Path, settings: SynthSettings, progress: Callable[[str], None]) -> dict[str, Any]:
    folder = out / FOLDER_OF_TASK[task]
    key = settings.key(task)
    engine = espeak()  # initialised here, in the parent, before any worker is forked
    reused = _stamp_matches(folder, key, engine.version)
    if reused is not None:
        progress(f"[synth] {task}: {folder} matches its synth.json stamp, reused ({reused['clips']} clips)")
        return {**_summary(folder, reused), "reused": True}
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / PARTIAL_MARK).write_text("mast synth is writing this folder\n")
    speakers, clips = PLAN_OF_TASK[task](settings)
    progress(f"[synth] {task}: {len(speakers)} {'instruments' if task == 'instruments' else 'speakers'}, {len(clips)} clips -> {folder}")
    bank = _write_background(task, folder, settings.seed, settings.workers, progress)

    clip_start = time.perf_counter()
    done = _clip_meter(task, len(clips), progress)
    written = render_clips(task, folder, speakers, clips, bank, settings.seed, settings.workers, done)
    clip_seconds = time.perf_counter() - clip_start
    _INDEX_OF_TASK[task](folder, speakers, clips)
    split_of = _split_of(speakers, clips)
    stamp = {
        "format": FORMAT_VERSION,
        "generator": "mast synth",
        "dataset": DATASET_OF_TASK[task],
        "key": key,
        "espeak_ng": engine.version,
        "clips": len(written),
        "per_split": dict(Counter(split_of[rel] for rel, _ in written)),
        "audio_seconds": round(sum(seconds for _, seconds in written), 3),
        "audio_files": len(written) + len(bank),
        "seconds": round(time.perf_counter() - started, 3),
        "clip_seconds": round(clip_seconds, 3),
        "clips_per_second": round(len(written) / max(clip_seconds, 1e-9), 2),
        "speakers": [_describe(s) for s in speakers],
    }
    (folder / STAMP_FILE).write_text(json.dumps(stamp, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / PARTIAL_MARK).unlink()
    progress(
        f"[synth] {task}: {len(written)} clips in {stamp['seconds']:.1f} s "
        f"({stamp['clips_per_second']:.0f} clips/s for the clips); split {stamp['per_split']}"
    )
    return {**_summary(folder, stamp), "reused": False}


def synthesize(out: str | Path, settings: SynthSettings = SynthSettings(), progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the requested datasets under ``out``; reuse those whose stamp matches.

    Returns ``{dataset name: {"path", "clips", "per_split", "speakers", "seconds",
    "clips_per_second", "reused"}, "seconds": total}``, dataset names as in
    ``pipelines.data.layouts`` (``speech_commands``, ``voxforge``).
    """
    started = time.perf_counter()
    out = check_request(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for task in settings.tasks:
        result[DATASET_OF_TASK[task]] = _synthesize_task(task, out, settings, progress)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
