"""Speech Commands V1/V2: one folder per word + ``validation_list.txt``/``testing_list.txt``.

In the 12-class task the ``_silence_`` class is cut from ``_background_noise_``, the one place a
reader looks into audio files: it reads their WAV headers to know how long they are.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import soundfile

from .base import (
    _SPLITS,
    ClipRecord,
    Layout,
    LayoutError,
    _as_root,
    _finish,
    _open_text,
    _reader,
    _rel,
    _require,
    _walk_audio,
)

SPEECH_COMMANDS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
_V2_ONLY_WORDS = ("backward", "forward", "follow", "learn", "visual")


def _audio_seconds(path: Path) -> float | None:
    """Duration from the file header (libsndfile, no decoding); None if the header is unreadable."""
    try:
        info = soundfile.info(str(path))
    except Exception:  # unreadable noise files are listed as excluded, not fatal
        return None
    return info.frames / info.samplerate if info.samplerate > 0 else None


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, ties to the first)."""
    whole = sum(weights)
    quotas = [total * w / whole for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _silence_segments(noise: Sequence[tuple[Path, int]], wanted: dict[str, int]) -> dict[str, list[tuple[Path, int]]]:
    """1-s (file, start ms) segments per split, disjoint across splits and spread over the files.

    Every noise file is cut into consecutive regions, one per split in train/validation/test
    order, sized in proportion to the split's count; a split's segments lie inside its regions,
    so no audio is shared between splits however many are needed. Within a region the segments
    are evenly spaced from its start to its end: they do not overlap while the region has room
    (always for the fixture, and whenever count <= seconds of noise), and they overlap evenly
    beyond that (the real V2 train split asks for ~7,700 s out of ~400 s of noise).
    """
    splits = [s for s in _SPLITS if wanted.get(s, 0) > 0]
    total = sum(wanted[s] for s in splits)
    result: dict[str, list[tuple[Path, int]]] = {s: [] for s in splits}
    done = 0
    for split in splits:
        lo, hi = done, done + wanted[split]
        done = hi
        regions = []
        for path, length_ms in noise:
            # ceil/floor to whole ms keeps neighbouring regions apart after rounding
            a, b = -(-length_ms * lo // total), length_ms * hi // total
            if b - a >= 1000:
                regions.append((path, a, b))
        if not regions:
            continue
        for (path, a, b), count in zip(regions, _apportion(wanted[split], [b - a for _, a, b in regions])):
            span = b - 1000 - a
            count = min(count, span + 1)  # distinct whole-ms offsets only
            for k in range(count):
                offset = a + (span // 2 if count == 1 else round(span * k / (count - 1)))
                result[split].append((path, offset))
    return result


def _word_folders(root: Path) -> list[str]:
    words = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(("_", ".")))
    if not words:
        raise LayoutError(f"no word folders in {root}: is --root the Speech Commands folder?")
    return words


def _listed_splits(lists: dict[str, Path]) -> dict[str, str]:
    """Relative path -> split of every file named in the validation and testing lists."""
    split_of: dict[str, str] = {}
    for split, list_path in lists.items():
        with _open_text(list_path) as handle:
            for line in handle:
                if line.strip():
                    split_of[line.strip().replace("\\", "/")] = split
    return split_of


def _word_records(root: Path, words: list[str], classes: str, split_of: dict[str, str]) -> tuple[list[ClipRecord], list[str]]:
    """A record per word clip (split from the lists, else train) and the listed files not found."""
    found: set[str] = set()
    records: list[ClipRecord] = []
    for word in words:
        label = word if classes == "all" or word in SPEECH_COMMANDS_WORDS else UNKNOWN
        for path in _walk_audio(root / word):
            rel = _rel(path, root)
            found.add(rel)
            records.append(ClipRecord(id=rel, path=str(path), labels=(label,), split=split_of.get(rel, "train")))
    return records, [rel for rel in split_of if rel not in found]


def _noise_files(root: Path, excluded: list[tuple[str, str]]) -> list[tuple[Path, int]]:
    """(path, length in ms) of the background noise files; unreadable or shorter than 1 s: excluded."""
    noise: list[tuple[Path, int]] = []
    noise_dir = root / "_background_noise_"
    if noise_dir.is_dir():
        for path in _walk_audio(noise_dir):
            seconds = _audio_seconds(path)
            if seconds is None or seconds < 1:
                excluded.append((str(path), "background noise without a readable WAV header of at least 1 s"))
            else:
                noise.append((path, int(seconds * 1000)))
    return noise


def _silence_records(root: Path, words: list[ClipRecord], excluded: list[tuple[str, str]], info: dict[str, Any]) -> list[ClipRecord]:
    """The ``_silence_`` clips for the word clips ``words``; their counts go into ``info``."""
    sizes = Counter(record.split for record in words)
    # one class's worth among 11 others; n / 11 is never a tie, so round() is exact here
    wanted = {split: round(sizes[split] / 11) for split in _SPLITS}
    noise = _noise_files(root, excluded)
    placed = _silence_segments(noise, wanted) if noise else {}
    records = [
        ClipRecord(
            id=f"{_rel(path, root)}@{offset / 1000:.3f}",
            path=str(path),
            labels=(SILENCE,),
            split=split,
            start=offset / 1000,
            duration=1.0,
        )
        for split, segments in placed.items()
        for path, offset in segments
    ]
    info["silence"] = {split: len(placed.get(split, [])) for split in _SPLITS}
    info["silence_wanted"] = wanted
    return records


@_reader(
    "speech_commands",
    classes='"12" (10 words + _silence_ + _unknown_) or "all" (every word folder is a class)',
)
def read_speech_commands(root: str | Path, *, classes: str = "12") -> Layout:
    """Speech Commands V1 or V2: one folder per word + ``validation_list.txt``/``testing_list.txt``.

    Files listed in ``validation_list.txt`` are ``validation``, in ``testing_list.txt`` ``test``, the
    rest ``train``. Ids are the relative paths (``right/bb05582b_nohash_0.wav``).

    ``classes="12"``: the 10 command words keep their label, every other word is ``_unknown_``, and
    ``_silence_`` adds round(n / 11) one-second clips to a split of n word clips (one class's
    worth), cut from ``_background_noise_`` by :func:`_silence_segments`; id
    ``_background_noise_/<file>@<start seconds>``. Vocabulary: the 10 words, ``_silence_``,
    ``_unknown_``. ``classes="all"``: one class per word folder (30 in V1, 35 in V2), sorted, no
    silence. ``info["version"]`` is 2 iff a V2-only word folder exists.
    """
    if classes not in ("12", "all"):
        raise LayoutError(f"option classes must be '12' or 'all', got {classes!r}")
    root = _as_root(root)
    lists = {
        "validation": _require(root / "validation_list.txt", "Speech Commands (one folder per word)"),
        "test": _require(root / "testing_list.txt", "Speech Commands (one folder per word)"),
    }
    words = _word_folders(root)
    version = 2 if any(word in words for word in _V2_ONLY_WORDS) else 1
    records, missing = _word_records(root, words, classes, _listed_splits(lists))
    excluded: list[tuple[str, str]] = []
    info: dict[str, Any] = {"version": version, "classes": classes, "words": words}

    if classes == "12":
        records += _silence_records(root, records, excluded, info)
        order: list[str] | None = [*SPEECH_COMMANDS_WORDS, SILENCE, UNKNOWN]
    else:
        order = None
    return _finish("speech_commands", records, order, missing, excluded, info)
