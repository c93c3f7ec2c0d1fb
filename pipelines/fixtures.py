"""Tiny but complete copies of every dataset layout that :mod:`pipelines.layouts` reads.

Each writer reproduces the real folder structure, metadata columns and quirks (AudioSet's ``#``
comment lines and quoted label lists, Y-prefixed file names and ids that start with Y, FSD50K's
header-less vocabulary, IEMOCAP's annotator lines, ...) with real audio written by ``soundfile``:
short tones and noise at 16 kHz plus a 44.1 kHz stereo file, FLAC/OGG/MP3 where the layout allows
other formats. With ``corrupt=True`` some referenced WAVs are replaced by bad files (empty,
truncated, random bytes, digital silence, NaN samples; optionally a huge one) that are still valid
records at the layout level, so the decoding stage can be tested on them.

``write_layout`` returns what it wrote, for tests to assert against::

    {"dataset": str, "root": str, "options": {discover options the expectation assumes},
     "expected": {"records": int, "per_split": {split: n}, "per_fold": {fold: n} (fold datasets),
                  "vocabulary": [...], "missing": int, "excluded": int,
                  "labels": {record id: labels tuple} for every record, "info": {expected Layout.info items}},
     "ids": {role: record id},           # records of interest, e.g. "y_prefixed_file"
     "corrupt": [relative paths], "corrupt_kinds": {relative path: kind}, "audio_files": int}
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

CORRUPT_KINDS = ("empty", "truncated", "random_bytes", "digital_silence", "nan")
HUGE_RATE = 8000  # the huge clip is zeros at a low rate so even ~10 minutes stays a few MB


@dataclass
class _Clip:
    rel: str
    seconds: float = 0.5
    rate: int = 16000
    channels: int = 1
    subtype: str | None = None
    noise: bool = False
    corruptible: bool = True  # a plain 16 kHz WAV of a record: may be swapped for a bad file


class _Writer:
    """Collects the audio to write and writes it, swapping some clips for corrupt ones."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.clips: list[_Clip] = []

    def text(self, rel: str, content: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")

    def csv(self, rel: str, rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self.text(rel, buffer.getvalue())

    def audio(self, rel: str, seconds: float = 0.5, rate: int = 16000, channels: int = 1, *,
              subtype: str | None = None, noise: bool = False, record: bool = True) -> str:
        # mono WAVs of records only: the stereo/odd-format files must survive to test decoding
        plain = rel.endswith(".wav") and channels == 1 and subtype is None and not noise
        self.clips.append(_Clip(rel, seconds, rate, channels, subtype, noise, corruptible=record and plain))
        return rel

    def hex(self, digits: int) -> str:
        return "".join(self.rng.choice(list("0123456789abcdef"), digits))

    def _signal(self, clip: _Clip) -> np.ndarray:
        # a per-file tone (frequency from the path, so it does not depend on write order) plus noise
        rng = np.random.default_rng([self.seed, zlib.crc32(clip.rel.encode())])
        t = np.arange(int(round(clip.seconds * clip.rate))) / clip.rate
        if clip.noise:
            mono = 0.1 * rng.standard_normal(t.size)
        else:
            freq = 200 + zlib.crc32(clip.rel.encode()) % 1800
            mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
        channels = [mono * (1 - 0.3 * c) for c in range(clip.channels)]
        return np.stack(channels, axis=1).astype(np.float32) if clip.channels > 1 else mono.astype(np.float32)

    def write(self, corrupt: bool, huge_seconds: float | None) -> tuple[list[str], dict[str, str]]:
        kinds = [*(CORRUPT_KINDS if corrupt else ()), *(("huge",) if huge_seconds else ())]
        candidates = sorted(c.rel for c in self.clips if c.corruptible)
        if len(candidates) < len(kinds):
            raise ValueError(f"fixture has {len(candidates)} plain WAVs, needs {len(kinds)} to corrupt")
        # spread the bad files over the layout (first, last and evenly between), deterministically
        picks = [candidates[round(i * (len(candidates) - 1) / max(1, len(kinds) - 1))] for i in range(len(kinds))]
        bad = dict(zip(picks, kinds))
        for clip in self.clips:
            path = self.root / clip.rel
            path.parent.mkdir(parents=True, exist_ok=True)
            kind = bad.get(clip.rel)
            if kind is None:
                sf.write(path, self._signal(clip), clip.rate, subtype=clip.subtype)
            else:
                self._write_bad(path, clip, kind, huge_seconds)
        return picks, bad

    def _write_bad(self, path: Path, clip: _Clip, kind: str, huge_seconds: float | None) -> None:
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            # a valid header that promises a full second, cut mid-data (and mid-sample)
            sf.write(path, self._signal(_Clip(clip.rel, 1.0)), 16000, subtype="PCM_16")
            os.truncate(path, 44 + 16000 * 2 // 3 + 1)
        elif kind == "random_bytes":
            path.write_bytes(np.random.default_rng([self.seed, 7]).bytes(3000))
        elif kind == "digital_silence":
            sf.write(path, np.zeros(int(clip.seconds * 16000), np.float32), 16000, subtype="PCM_16")
        elif kind == "nan":
            samples = self._signal(clip)
            samples[::97] = np.nan
            sf.write(path, samples, 16000, subtype="FLOAT")
        elif kind == "huge":
            block = np.zeros(HUGE_RATE * 60, np.int16)
            remaining = int(huge_seconds * HUGE_RATE)
            with sf.SoundFile(path, "w", HUGE_RATE, 1, subtype="PCM_16") as handle:
                while remaining > 0:
                    handle.write(block[:remaining])
                    remaining -= block.size
        else:  # pragma: no cover - the kinds are fixed above
            raise ValueError(kind)


def _mp3_available() -> bool:
    return "MP3" in sf.available_formats()


def _expected(records: list[tuple[str, tuple[str, ...], str, int | None]], order: list[str] | None,
              missing: int, excluded: int, *, folds: bool = False) -> dict[str, Any]:
    """Expected counts from the writer's own list of (id, labels, split, fold) records."""
    used = {label for _, labels, _, _ in records for label in labels}
    expected: dict[str, Any] = {
        "records": len(records),
        "per_split": dict(Counter(split for _, _, split, _ in records)),
        "vocabulary": [label for label in order if label in used] if order is not None else sorted(used),
        "missing": missing,
        "excluded": excluded,
        "labels": {record_id: labels for record_id, labels, _, _ in records},  # every record
        "info": {},
    }
    if folds:
        expected["per_fold"] = dict(Counter(fold for _, _, _, fold in records if fold is not None))
    return expected


def _spot(expected: dict[str, Any], labels: dict[str, tuple[str, ...]]) -> None:
    """Hand-written labels of a few telling records must agree with the computed mapping."""
    for record_id, value in labels.items():
        if expected["labels"].get(record_id) != value:
            raise AssertionError(f"fixture bookkeeping: {record_id} has {expected['labels'].get(record_id)}, not {value}")


# ---------------------------------------------------------------------------------------------
# AudioSet
# ---------------------------------------------------------------------------------------------

AUDIOSET_CLASSES = (
    ("/m/09x0r", "Speech"), ("/m/05zppz", "Male speech, man speaking"), ("/m/02zsn", "Female speech, woman speaking"),
    ("/m/0ytgt", "Child speech, kid speaking"), ("/m/01h8n0", "Conversation"), ("/m/02qldy", "Narration, monologue"),
    ("/m/0261r1", "Babbling"), ("/m/0brhx", "Speech synthesizer"), ("/m/07p6fty", "Shout"),
    ("/m/07q4ntr", "Bellow"),  # never used: must not appear in the vocabulary
    ("/m/04rlf", "Music"), ("/t/dd00088", "Gush"),
)
AUDIOSET_RARE = "Babbling"
_YT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def _audioset(w: _Writer, *, n_unbalanced: int = 8) -> dict[str, Any]:
    mid = {name: m for m, name in AUDIOSET_CLASSES}
    order = [name for _, name in AUDIOSET_CLASSES]
    used_ids: set[str] = set()

    def ytid(first: str = "") -> str:
        while True:
            value = first + "".join(w.rng.choice(list(_YT_CHARS), 11 - len(first)))
            # ids with a Y are made on purpose below; keep the others unambiguous about it
            if value not in used_ids and (first or value[0] != "Y"):
                used_ids.add(value)
                return value

    records: list[tuple[str, tuple[str, ...], str, int | None]] = []
    ids: dict[str, str] = {}
    segment_rows: dict[str, list[tuple[str, float, tuple[str, ...]]]] = {}

    def segment(split: str, role: str | None, labels: tuple[str, ...], start: float, file: str | None,
                first: str = "", **audio: Any) -> str:
        y = "--PJHxphWEs" if role == "dash_id" else ytid(first)
        segment_rows.setdefault(split, []).append((y, start, labels))
        if file is not None:
            w.audio(f"audio/{file.format(y=y)}", **audio)
            records.append((f"{split}/{y}", tuple(sorted(labels, key=order.index)), split, None))
        if role:
            ids[role] = f"{split}/{y}"
        return y

    # balanced_train: every file-naming convention downloaders use
    segment("balanced_train", "dash_id", ("Speech", "Gush"), 30.0, "balanced_train/Y{y}_30.000_40.000.wav")
    segment("balanced_train", "starts_with_y", ("Male speech, man speaking", "Speech"), 0.0, "balanced_train/{y}.wav", first="Y")
    y = segment("balanced_train", "flac_start_seconds", ("Music",), 30.0, "balanced_train/{y}_30.flac")
    w.audio(f"audio/balanced_train/{y}.wav", record=False)  # start-less twin: the FLAC naming the start wins
    segment("balanced_train", "ogg_start_ms", ("Female speech, woman speaking", "Conversation"), 30.0,
            "balanced_train/{y}_30000.ogg")
    segment("balanced_train", "stereo_44k", ("Child speech, kid speaking", "Shout"), 30.0, "balanced_train/{y}_30.000.wav",
            rate=44100, channels=2)
    segment("balanced_train", "no_audio", ("Speech",), 10.0, None)
    # eval: an id starting with Y under the Y-prefix convention, MP3, a wrong start, nested folders
    segment("eval", "y_prefixed_y_id", ("Narration, monologue",), 0.0, "eval/Y{y}_0.000_10.000.wav", first="Y")
    ext = "mp3" if _mp3_available() else "wav"
    segment("eval", "mp3", ("Speech synthesizer",), 20.0, f"eval/{{y}}.{ext}")
    y = segment("eval", "wrong_start", ("Music",), 20.0, None)
    w.audio(f"audio/eval/{y}_99.000.wav", record=False)  # another part of the video: not this segment
    segment("eval", "nested", ("Speech", "Music"), 40.0, "eval/deeper/still/{y}.wav")
    # unbalanced_train: bulk rows; the rare class gets exactly 2 clips (or fewer if n < 2)
    common = ["Speech", "Music", "Male speech, man speaking", "Female speech, woman speaking", "Conversation",
              "Child speech, kid speaking", "Narration, monologue", "Shout", "Speech synthesizer", "Gush"]
    weights = np.array([30, 25, 12, 10, 8, 5, 4, 3, 2, 1], float)
    rare_rows = {0, n_unbalanced // 2} if n_unbalanced >= 2 else {0}
    for i in range(n_unbalanced):
        primary = AUDIOSET_RARE if i in rare_rows else common[w.rng.choice(len(common), p=weights / weights.sum())]
        labels = {primary}
        if w.rng.random() < 0.3:
            labels.add(common[w.rng.choice(2)])
        start = float(w.rng.integers(0, 300)) + 0.5 * (i % 2)
        segment("unbalanced_train", "rare" if i == 0 else None, tuple(labels), start,
                f"unbalanced_train/part{i // 50:02d}/{{y}}_{start:.3f}.wav", seconds=0.25)
    # not referenced by any segment list: ignored
    w.audio(f"audio/unreferenced/{ytid()}.wav", record=False)
    w.text("audio/README.txt", "downloaded with a youtube-dl script\n")

    w.text("class_labels_indices.csv", "index,mid,display_name\n" + "".join(
        f'{i},{m},"{name}"\n' for i, (m, name) in enumerate(AUDIOSET_CLASSES)))
    for split, rows in segment_rows.items():
        positives = sum(len(labels) for _, _, labels in rows)
        unique = len({label for _, _, labels in rows for label in labels})
        header = (f"# Segments csv created Sun Mar  5 10:54:31 2017\n"
                  f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels={unique}, num_positive_labels={positives}\n"
                  f"# YTID, start_seconds, end_seconds, positive_labels\n")
        body = "".join(f'{y}, {start:.3f}, {start + 10:.3f}, "{",".join(mid[label] for label in labels)}"\n'
                       for y, start, labels in rows)
        w.text(f"{split}_segments.csv", header + body)

    expected = _expected(records, order, missing=2, excluded=1)
    _spot(expected, {
        ids["dash_id"]: ("Speech", "Gush"),
        ids["starts_with_y"]: ("Speech", "Male speech, man speaking"),
        ids["y_prefixed_y_id"]: ("Narration, monologue",),
        ids["stereo_44k"]: ("Child speech, kid speaking", "Shout"),
    })
    expected["paths"] = {
        ids["dash_id"]: "audio/balanced_train/Y--PJHxphWEs_30.000_40.000.wav",
        ids["flac_start_seconds"]: f"audio/balanced_train/{ids['flac_start_seconds'].split('/')[1]}_30.flac",
        ids["y_prefixed_y_id"]: f"audio/eval/Y{ids['y_prefixed_y_id'].split('/')[1]}_0.000_10.000.wav",
    }
    expected["missing_ids"] = sorted([ids.pop("no_audio").split("/")[1], ids.pop("wrong_start").split("/")[1]])
    expected["rare"] = AUDIOSET_RARE
    return {"expected": expected, "ids": ids, "options": {}}


# ---------------------------------------------------------------------------------------------
# FSD50K
# ---------------------------------------------------------------------------------------------

FSD50K_VOCABULARY = (
    ("Accelerating_and_revving_and_vroom", "/m/07q2z82"), ("Accordion", "/m/0mkg"), ("Acoustic_guitar", "/m/042v_gx"),
    ("Bark", "/m/05tny_"), ("Dog", "/m/0bt9lr"), ("Domestic_animals_and_pets", "/m/068hy"), ("Guitar", "/m/0342h"),
    ("Music", "/m/04rlf"), ("Plucked_string_instrument", "/m/0fx80y"),
    ("Zither", "/m/01hgjl"),  # unused
    ("Animal", "/m/0jbk"),    # last by index although first alphabetically
)


def _fsd50k(w: _Writer) -> dict[str, Any]:
    mid = dict(FSD50K_VOCABULARY)
    order = [name for name, _ in FSD50K_VOCABULARY]
    label_sets = [
        ("Bark", "Dog", "Domestic_animals_and_pets", "Animal"),
        ("Acoustic_guitar", "Guitar", "Plucked_string_instrument", "Music"),
        ("Accordion", "Music"),
        ("Accelerating_and_revving_and_vroom",),
    ]
    records = []
    dev = [["fname", "labels", "mids", "split"]]
    evaluation = [["fname", "labels", "mids"]]
    plan = [("train", 6), ("val", 2), ("eval", 4)]
    fname, k = 64760, 0
    for split, count in plan:
        for i in range(count):
            fname, k = fname + 1 + i * 37, k + 1
            labels = label_sets[k % len(label_sets)]
            row = [str(fname), ",".join(labels), ",".join(mid[label] for label in labels)]
            if split == "eval":
                evaluation.append(row)
                w.audio(f"FSD50K.eval_audio/{fname}.wav", 0.5, 44100, channels=2 if i == 0 else 1)
                records.append((f"eval/{fname}", tuple(sorted(labels, key=order.index)), "test", None))
            else:
                dev.append([*row, split])
                if split == "train" and i == 0:
                    continue  # listed, never downloaded: missing
                w.audio(f"FSD50K.dev_audio/{fname}.wav", 0.5, 44100)  # FSD50K is 44.1 kHz mono
                records.append((f"dev/{fname}", tuple(sorted(labels, key=order.index)),
                                "train" if split == "train" else "validation", None))
    w.csv("FSD50K.ground_truth/dev.csv", dev)
    w.csv("FSD50K.ground_truth/eval.csv", evaluation)
    w.csv("FSD50K.ground_truth/vocabulary.csv", [[i, name, m] for i, (name, m) in enumerate(FSD50K_VOCABULARY)])
    w.audio(f"FSD50K.dev_audio/{fname + 999}.wav", record=False)  # on disk, in no CSV: ignored
    expected = _expected(records, order, missing=1, excluded=0)
    _spot(expected, {rid: labels for rid, labels, _, _ in records[:3]})
    return {"expected": expected, "ids": {}, "options": {}}


# ---------------------------------------------------------------------------------------------
# Speech Commands
# ---------------------------------------------------------------------------------------------

_SC_KNOWN = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _speech_commands(w: _Writer, *, version: int = 2, classes: str = "12") -> dict[str, Any]:
    if version not in (1, 2) or classes not in ("12", "all"):
        raise ValueError("version must be 1 or 2 and classes '12' or 'all'")
    extra = "follow" if version == 2 else "dog"  # "follow" exists only in V2
    plan = {
        "train": [*_SC_KNOWN, "yes", "bed", "cat", extra, extra, "happy", "happy"],
        "validation": ["yes", "no", "up", "bed", extra, "left"],
        "test": ["down", "stop", "go", "cat", "happy", "right"],
    }
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    records = []
    ids: dict[str, str] = {}
    for split, words in plan.items():
        for i, word in enumerate(words):
            rel = f"{word}/{w.hex(8)}_nohash_{i % 3}.wav"
            if split == "train" and i == 0:
                w.audio(rel, 1.0, 44100, channels=2)
            elif split == "train" and i == 1:
                w.audio(rel, 0.8)  # real V2 has clips shorter than a second
            else:
                w.audio(rel, 1.0)
            if split in lists:
                lists[split].append(rel)
            label = word if classes == "all" or word in _SC_KNOWN else "_unknown_"
            records.append((rel, (label,), split, None))
            ids.setdefault(f"{split}_{word}", rel)
    lists["test"].append("no/deadbeef_nohash_9.wav")  # listed but absent: missing
    w.text("validation_list.txt", "".join(f"{rel}\n" for rel in sorted(lists["validation"])))
    w.text("testing_list.txt", "".join(f"{rel}\n" for rel in sorted(lists["test"])))
    w.text("README.md", "Speech Commands (fixture)\n")
    w.text("LICENSE", "CC-BY-4.0\n")
    noise_seconds = 5.0
    noise_names = ("running_tap.wav", "white_noise.wav")
    for name in noise_names:
        w.audio(f"_background_noise_/{name}", noise_seconds, noise=True, record=False)
    w.text("_background_noise_/README.md", "background noise files\n")

    silence = {}
    if classes == "12":
        sizes = Counter(split for _, _, split, _ in records)
        silence = {split: round(n / 11) for split, n in sizes.items()}
        # where the 1-s clips fall is the reader's convention (tested there for its properties);
        # the fixture only knows the noise lengths, and reuses it to name the expected ids
        from pipelines.layouts import _silence_segments

        noise = [(Path(f"_background_noise_/{name}"), int(noise_seconds * 1000)) for name in noise_names]
        for split, segments in _silence_segments(noise, silence).items():
            records += [(f"{path.as_posix()}@{offset / 1000:.3f}", ("_silence_",), split, None) for path, offset in segments]
    order = [*_SC_KNOWN, "_silence_", "_unknown_"] if classes == "12" else None
    expected = _expected(records, order, missing=1, excluded=0)
    _spot(expected, {
        ids["train_bed"]: ("_unknown_",) if classes == "12" else ("bed",),
        ids["train_yes"]: ("yes",),
        ids[f"validation_{extra}"]: ("_unknown_",) if classes == "12" else (extra,),
    })
    expected["info"] = {"version": version, "classes": classes}
    expected["silence"] = silence
    expected["noise_seconds"] = noise_seconds
    return {"expected": expected, "ids": ids, "options": {"classes": classes}}


# ---------------------------------------------------------------------------------------------
# VoxCeleb1, IEMOCAP
# ---------------------------------------------------------------------------------------------


def _voxceleb1(w: _Writer) -> dict[str, Any]:
    lines, records = [], []
    code = {1: "train", 2: "validation", 3: "test"}
    plan = [1, 1, 3, 2, 1, 1, 2, 3, 1, 1, 1, 1]
    for i, which in enumerate(plan):
        speaker = f"id1000{1 + i % 3}"
        video = "".join(w.rng.choice(list(_YT_CHARS[:62]), 11))
        rel = f"{speaker}/{video}/{i + 1:05d}.wav"
        lines.append(f"{which} {rel}\n")
        if i == len(plan) - 1:
            continue  # missing
        w.audio(f"wav/{rel}", 0.5, *((44100, 2) if i == 4 else (16000, 1)))
        records.append((rel, (speaker,), code[which], None))
    w.text("iden_split.txt", "".join(lines))
    expected = _expected(records, None, missing=1, excluded=0)
    _spot(expected, {records[0][0]: records[0][1]})
    return {"expected": expected, "ids": {}, "options": {}}


_IEMOCAP_PLAN = {
    1: ("Ses01F_impro01", [("F000", "neu"), ("F001", "exc"), ("M000", "fru"), ("M001", "ang")]),
    2: ("Ses02M_script01_1", [("F000", "sad"), ("M000", "hap"), ("F001", "xxx")]),
    3: ("Ses03F_impro05", [("F000", "neu"), ("M000", "ang")]),
    4: ("Ses04M_script02_2", [("F000", "sad"), ("M000", "exc"), ("M001", "neu")]),
    5: ("Ses05F_impro03", [("F000", "hap"), ("M000", "neu")]),
}


def _iemocap(w: _Writer) -> dict[str, Any]:
    records = []
    excluded = 0
    missing_utterance = "Ses04M_script02_2_M001"
    for session, (dialog, utterances) in _IEMOCAP_PLAN.items():
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n", "\n"]
        start = 6.2901
        for speaker_turn, emotion in utterances:
            utterance = f"{dialog}_{speaker_turn}"
            end = start + 1.9456
            lines += [
                f"[{start:.4f} - {end:.4f}]\t{utterance}\t{emotion}\t[2.5000, 2.5000, 2.5000]\n",
                "C-E2:\tNeutral;\t()\n", "C-E3:\tFrustration; Anger;\t()\n",
                "A-E3:\tval 3; act 2; dom  2;\t()\n", "A-F1:\tval 3; act 2; dom  1;\t(agitated)\n", "\n",
            ]
            start = end + 1.3
            if utterance == missing_utterance:
                continue
            rel = f"Session{session}/sentences/wav/{dialog}/{utterance}.wav"
            label = "hap" if emotion == "exc" else emotion
            kept = label in ("ang", "hap", "neu", "sad")
            w.audio(rel, 0.5, *((44100, 2) if utterance == "Ses03F_impro05_F000" else (16000, 1)), record=kept)
            if kept:
                records.append((utterance, (label,), "all", session))
            else:
                excluded += 1
        w.text(f"Session{session}/dialog/EmoEvaluation/{dialog}.txt", "".join(lines))
        # per-annotator copies in sub-folders disagree with the consensus and must be ignored
        w.text(f"Session{session}/dialog/EmoEvaluation/Categorical/{dialog}_e2_cat.txt",
               f"{dialog}_{utterances[0][0]} :Anger; ()\n[1.0 - 2.0]\t{dialog}_X999\tsad\t[1, 1, 1]\n")
    w.text("Session1/sentences/wav/Ses01F_impro01/._Ses01F_impro01_F000.wav", "\x00\x05\x16\x07 mac resource fork")
    expected = _expected(records, ["ang", "hap", "neu", "sad"], missing=1, excluded=excluded, folds=True)
    _spot(expected, {"Ses01F_impro01_F001": ("hap",), "Ses04M_script02_2_M000": ("hap",), "Ses02M_script01_1_M000": ("hap",),
                          "Ses01F_impro01_F000": ("neu",)})
    expected["excluded_reasons"] = ["label 'fru' is not one of the 4 classes", "label 'xxx' is not one of the 4 classes"]
    return {"expected": expected, "ids": {"exc": "Ses01F_impro01_F001"}, "options": {}}


# ---------------------------------------------------------------------------------------------
# VoxForge and the generic manifest
# ---------------------------------------------------------------------------------------------


def _voxforge(w: _Writer) -> dict[str, Any]:
    rows = [["path", "language", "split"]]
    records = []
    split_names = {"de": "val", "fr": "dev", "it": "valid", "en": "test", "es": "test", "ru": "test"}
    formats = {"es": ("flac", 16000, 1), "it": ("ogg", 16000, 1), "ru": ("wav", 44100, 2),
               "fr": ("mp3" if _mp3_available() else "flac", 16000, 1)}
    for language in ("de", "en", "es", "fr", "it", "ru"):
        for n, split in enumerate(("train", split_names[language])):
            ext, rate, channels = formats.get(language, ("wav", 16000, 1)) if n == 1 else ("wav", 16000, 1)
            rel = f"{language}/anonymous-2008{n:02d}{len(rows):02d}-{w.hex(3)}/{ext}/{language}-{n:04d}.{ext}"
            w.audio(rel, 0.5, rate, channels)
            rows.append([rel, language, split])
            records.append((rel, (language,), "train" if n == 0 else "validation" if split != "test" else "test", None))
    for n in range(4):  # more plain training WAVs so every corrupt kind has a target
        rel = f"de/anonymous-2009{n:04d}/wav/de-{n + 10:04d}.wav"
        w.audio(rel)
        rows.append([rel, "de", "train"])
        records.append((rel, ("de",), "train", None))
    rows.append(["en/anonymous-20100101-zzz/wav/en-0099.wav", "en", "train"])  # missing
    rows.append([w.audio("nl/anonymous-20100101-nl/wav/nl-0001.wav", record=False), "nl", "train"])  # excluded
    w.csv("voxforge.csv", rows)
    expected = _expected(records, ["de", "en", "es", "fr", "it", "ru"], missing=1, excluded=1)
    _spot(expected, {records[0][0]: ("de",)})
    return {"expected": expected, "ids": {}, "options": {}}


def _manifest(w: _Writer) -> dict[str, Any]:
    rows = [["path", "labels", "split", "fold"]]
    records = []
    plan = [
        ("clips/a/one.wav", "speech;music", "train", "1"), ("clips/a/two.flac", "dog", "train", "1"),
        ("clips/b/three.ogg", "music", "val", "2"), ("clips/b/four.wav", "speech", "test", ""),
        ("clips/c/five.wav", "dog;speech", "", ""), ("clips/c/six.wav", "cat", "train", "2"),
        ("clips/c/seven.wav", "music;cat", "test", "3"), ("clips/c/eight.wav", "speech", "train", "3"),
        ("clips/d/nine.wav", "dog", "train", ""),
    ]
    for i, (rel, labels, split, fold) in enumerate(plan):
        w.audio(rel, 0.5, *((44100, 2) if i == 7 else (16000, 1)))
        shown = str(w.root / rel) if i == 5 else rel  # one absolute path
        rows.append([shown, labels, split, fold])
        records.append((rel, tuple(sorted(labels.split(";"))), {"val": "validation", "": "train"}.get(split, split),
                        int(fold) if fold else None))
    rows.append(["clips/missing.wav", "dog", "train", ""])
    w.csv("manifest.csv", rows)
    expected = _expected(records, None, missing=1, excluded=0, folds=True)
    _spot(expected, {"clips/a/one.wav": ("music", "speech"), "clips/c/six.wav": ("cat",)})
    return {"expected": expected, "ids": {"absolute": "clips/c/six.wav"}, "options": {}}


# ---------------------------------------------------------------------------------------------
# NSynth, UrbanSound8K, class folders
# ---------------------------------------------------------------------------------------------

_NSYNTH_FAMILIES = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal"]
_NSYNTH_SOURCES = ["acoustic", "electronic", "synthetic"]


def _nsynth(w: _Writer) -> dict[str, Any]:
    records = []
    plan = {"nsynth-train": _NSYNTH_FAMILIES, "nsynth-valid": ["vocal", "bass", "reed"],
            "nsynth-test": ["organ", "string", "brass"]}
    split_of = {"nsynth-train": "train", "nsynth-valid": "validation", "nsynth-test": "test"}
    for folder, families in plan.items():
        examples = {}
        for i, family in enumerate(families):
            source = _NSYNTH_SOURCES[i % 3]
            instrument, pitch = int(w.rng.integers(0, 1000)), int(w.rng.integers(21, 108))
            velocity = [25, 50, 75, 100, 127][i % 5]
            note = f"{family}_{source}_{instrument % 100:03d}-{pitch:03d}-{velocity:03d}"
            examples[note] = {
                "note": int(w.rng.integers(0, 300000)), "note_str": note, "instrument": instrument,
                "instrument_str": f"{family}_{source}_{instrument % 100:03d}", "pitch": pitch, "velocity": velocity,
                "sample_rate": 16000, "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                "qualities_str": ["bright"], "instrument_family": _NSYNTH_FAMILIES.index(family),
                "instrument_family_str": family, "instrument_source": i % 3, "instrument_source_str": source,
            }
            w.audio(f"{folder}/audio/{note}.wav", 0.5, *((44100, 2) if (folder, i) == ("nsynth-test", 0) else (16000, 1)))
            records.append((f"{folder}/{note}", (family,), split_of[folder], None))
        if folder == "nsynth-train":
            # listed, never written: missing
            ghost = "guitar_acoustic_999-060-127"
            examples[ghost] = {**examples[next(iter(examples))], "note_str": ghost,
                               "instrument_family_str": "guitar", "instrument_family": 3}
        w.text(f"{folder}/examples.json", json.dumps(examples, indent=4))
    expected = _expected(records, _NSYNTH_FAMILIES, missing=1, excluded=0)
    _spot(expected, {records[0][0]: ("bass",), records[-1][0]: records[-1][1]})
    return {"expected": expected, "ids": {}, "options": {}}


US8K_CLASSES = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                "gun_shot", "jackhammer", "siren", "street_music"]


def _us8k(w: _Writer) -> dict[str, Any]:
    rows = [["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]]
    records = []
    # real US8K mixes rates, channel counts and bit depths
    formats = {1: (44100, 2, "PCM_16"), 4: (48000, 2, "PCM_24"), 6: (22050, 1, "PCM_U8"), 8: (11025, 1, "PCM_16")}
    plan = [(fold, (fold * 3) % 10) for fold in range(1, 11)] + [(1, 3), (2, 8), (5, 0), (10, 9), (3, 6), (7, 1)]
    for i, (fold, class_id) in enumerate(plan):
        fs_id = 100032 + i * 1117
        name = f"{fs_id}-{class_id}-0-{i % 4}.wav"
        start = round(float(w.rng.uniform(0, 100)), 6)
        rows.append([name, fs_id, start, round(start + 0.5, 6), 1 + i % 2, fold, class_id, US8K_CLASSES[class_id]])
        if i == len(plan) - 1:
            continue  # missing
        rate, channels, subtype = formats.get(i, (16000, 1, None))
        w.audio(f"audio/fold{fold}/{name}", 0.5, rate, channels, subtype=subtype)
        records.append((f"fold{fold}/{name}", (US8K_CLASSES[class_id],), "all", fold))
    w.csv("metadata/UrbanSound8K.csv", rows)
    w.text("UrbanSound8K_README.txt", "UrbanSound8K fixture\n")
    expected = _expected(records, US8K_CLASSES, missing=1, excluded=0, folds=True)
    _spot(expected, {records[0][0]: records[0][1]})
    return {"expected": expected, "ids": {}, "options": {}}


def _folder(w: _Writer) -> dict[str, Any]:
    records = []
    mp3 = "mp3" if _mp3_available() else "wav"
    plan = [("bird/a.flac", {}), ("bird/b.ogg", {}), ("bird/night/c.wav", {}), ("cat/1.wav", {}), ("cat/2.wav", {}),
            ("cat/3.wav", {"rate": 44100, "channels": 2}), ("cat/4.wav", {}), (f"dog/x.{mp3}", {}), ("dog/y.wav", {}),
            ("dog/z.wav", {}), ("dog/more/w.wav", {})]
    for rel, spec in plan:
        w.audio(rel, 0.5, **spec)
        records.append((rel, (rel.split("/")[0],), "train", None))
    w.audio("loose.wav", record=False)  # directly under root: belongs to no label
    w.audio(".cache/hidden.wav", record=False)
    w.text("dog/notes.txt", "not audio\n")
    expected = _expected(records, None, missing=0, excluded=0)
    _spot(expected, {"bird/night/c.wav": ("bird",), "cat/3.wav": ("cat",)})
    return {"expected": expected, "ids": {}, "options": {}}


WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    "audioset": _audioset, "fsd50k": _fsd50k, "speech_commands": _speech_commands, "voxceleb1": _voxceleb1,
    "iemocap": _iemocap, "voxforge": _voxforge, "nsynth": _nsynth, "us8k": _us8k, "folder": _folder,
    "manifest": _manifest,
}


def write_layout(dataset: str, root: Path, *, seed: int = 0, corrupt: bool = True,
                 huge_seconds: float | None = None, **sizes: Any) -> dict[str, Any]:
    """Write a tiny copy of ``dataset``'s layout under ``root`` and describe it (see module doc).

    ``sizes`` are per-dataset knobs: audioset ``n_unbalanced`` (default 8; 200 for subset tests),
    speech_commands ``version`` (1 or 2) and ``classes`` ("12" or "all", which changes the
    expectation). ``huge_seconds`` replaces one referenced WAV by that many seconds of 8 kHz zeros.
    """
    if dataset not in WRITERS:
        raise ValueError(f"no fixture for {dataset!r}; known: {', '.join(WRITERS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    accepted = [p.name for p in inspect.signature(WRITERS[dataset]).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(sizes) - set(accepted))
    if unknown:
        raise ValueError(f"fixture {dataset}: unknown size option(s) {unknown}; valid: {accepted or 'none'}")
    writer = _Writer(root, seed)
    described = WRITERS[dataset](writer, **sizes)
    picks, kinds = writer.write(corrupt, huge_seconds)
    return {"dataset": dataset, "root": str(root), **described, "corrupt": picks, "corrupt_kinds": kinds,
            "audio_files": len(writer.clips)}


def write_all(root: Path, *, seed: int = 0, corrupt: bool = True) -> dict[str, dict[str, Any]]:
    """Every fixture, each under ``root/<dataset>``."""
    return {name: write_layout(name, Path(root) / name, seed=seed, corrupt=corrupt) for name in WRITERS}
