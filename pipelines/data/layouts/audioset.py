"""AudioSet: ``<list>_segments.csv`` + ``class_labels_indices.csv`` + clips as downloaders name them."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import (
    ClipRecord,
    Layout,
    LayoutError,
    _as_float,
    _as_int,
    _as_names,
    _as_root,
    _finish,
    _open_text,
    _ordered_labels,
    _read_table,
    _reader,
    _require,
    _split_list,
    _walk_audio,
)

AUDIOSET_SEGMENTS = ("balanced_train", "unbalanced_train", "eval")
_YTID = r"[A-Za-z0-9_-]{11}"
_NUMBER = r"\d+(?:\.\d+)?"
# Downloaders name files <ytid>.ext, <ytid>_<start>.ext, <ytid>_<start>_<end>.ext or the same with
# a leading "Y" (the convention of the AudioSet tagging repos, where names must not start with
# "-"). YouTube ids are exactly 11 characters, so both readings are tried and the segment list
# decides: stripping any leading Y would break ids that themselves start with Y.
_AUDIOSET_NAMES = (
    re.compile(rf"(?P<ytid>{_YTID})(?:_(?P<start>{_NUMBER})(?:[_-](?P<end>{_NUMBER}))?)?"),
    re.compile(rf"Y(?P<ytid>{_YTID})(?:_(?P<start>{_NUMBER})(?:[_-](?P<end>{_NUMBER}))?)?"),
)


def _audioset_name(stem: str, ytids: set[str]) -> list[tuple[str, str | None]]:
    """(ytid, start text) readings of a file stem whose ytid is in the segment lists."""
    readings = []
    for pattern in _AUDIOSET_NAMES:
        match = pattern.fullmatch(stem)
        if match and match["ytid"] in ytids:
            readings.append((match["ytid"], match["start"]))
    return readings


def _start_matches(text: str | None, start: float) -> bool:
    """Whether a start written in a file name (``30``, ``30.000``, ``30000`` ms) is ``start``."""
    if text is None:
        return True
    value = float(text)
    if abs(value - start) < 1e-3:
        return True
    # integers may be whole seconds (truncated or rounded) or milliseconds
    return "." not in text and (value in (math.floor(start), round(start)) or abs(value / 1000 - start) < 1e-3)


def _audioset_segments(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of a segment CSV after its ``#`` comment lines, with their line numbers."""
    with _open_text(path) as handle:
        lines = ((number, line) for number, line in enumerate(handle, 1) if line.strip() and not line.startswith("#"))
        numbers: list[int] = []

        def text() -> Iterator[str]:
            for number, line in lines:
                numbers.append(number)
                yield line

        for row in csv.reader(text(), skipinitialspace=True):
            yield numbers[-1], row


def _stratified_subset(records: list[ClipRecord], fraction: float, seed: int, key: Callable[[ClipRecord], str]) -> list[ClipRecord]:
    """A deterministic subset holding at least ceil(fraction * n_c) clips of every class c.

    Classes are filled rarest first: a clip taken for a rare class also counts for its other
    (usually frequent) labels, so the frequent classes need fewer extra clips and the subset stays
    close to ``fraction`` while no class drops out. Within a class, clips are taken in the order of
    sha1(seed, ytid), a fixed pseudo-random order independent of file-system listing.
    """

    def rank(record: ClipRecord) -> tuple[str, str]:
        return hashlib.sha1(f"{seed}:{key(record)}".encode()).hexdigest(), record.id

    by_class: dict[str, list[ClipRecord]] = defaultdict(list)
    for record in records:
        for label in record.labels or ("",):  # an unlabelled clip still belongs to some stratum
            by_class[label].append(record)
    selected: set[str] = set()
    have: Counter[str] = Counter()
    for label in sorted(by_class, key=lambda c: (len(by_class[c]), c)):
        target = math.ceil(fraction * len(by_class[label]))
        for record in sorted(by_class[label], key=rank):
            if have[label] >= target:
                break
            if record.id in selected:
                continue
            selected.add(record.id)
            have.update(record.labels or ("",))
    return [record for record in records if record.id in selected]


_Row = tuple[str, float, tuple[str, ...]]  # (ytid, start seconds, labels) of one segment list row


def _fraction_option(fraction: Any) -> float | None:
    if fraction is None:
        return None
    fraction = _as_float("fraction", fraction)
    if not 0 < fraction <= 1:
        raise LayoutError(f"option fraction must be in (0, 1], got {fraction}")
    return fraction


def _class_labels(labels_csv: Path) -> tuple[dict[str, str], list[str]]:
    """``mid -> display_name`` and the display names in ``index`` order."""
    _, rows = _read_table(labels_csv, ("index", "mid", "display_name"))
    mid_to_name: dict[str, str] = {}
    index_of: dict[str, int] = {}
    for line, row in rows:
        try:
            index = int(row["index"])
        except ValueError:
            raise LayoutError(f"{labels_csv}:{line}: index {row['index']!r} is not an integer") from None
        mid_to_name[row["mid"]] = row["display_name"]
        index_of[row["display_name"]] = index
    return mid_to_name, sorted(index_of, key=index_of.__getitem__)


def _chosen_lists(root: Path, segments: Sequence[str] | str | None) -> list[str]:
    """The segment lists to read: the option's (each must exist), else every one present."""
    if segments is not None:
        chosen = list(_as_names("segments", segments, AUDIOSET_SEGMENTS))
        for name in chosen:
            _require(root / f"{name}_segments.csv", "AudioSet")
        return chosen
    chosen = [s for s in AUDIOSET_SEGMENTS if (root / f"{s}_segments.csv").exists()]
    if not chosen:
        raise LayoutError(
            f"no segment list in {root}: expected one of "
            + ", ".join(f"{s}_segments.csv" for s in AUDIOSET_SEGMENTS)
            + "; is --root the AudioSet folder?"
        )
    return chosen


def _audio_folder(root: Path, audio_dir: str) -> Path:
    audio = Path(audio_dir) if os.path.isabs(audio_dir) else root / audio_dir
    if not audio.is_dir():
        raise LayoutError(f"{audio} not found: the AudioSet audio folder (option audio_dir) is missing")
    return audio


def _read_segment_list(
    path: Path, labels_csv: Path, mid_to_name: dict[str, str], rank: dict[str, int], excluded: list[tuple[str, str]]
) -> list[_Row]:
    """The rows of one segment list; a YouTube id listed again goes to ``excluded``."""
    seen: dict[str, int] = {}
    parsed: list[_Row] = []
    for line, row in _audioset_segments(path):
        if len(row) < 4:
            raise LayoutError(f"{path}:{line}: expected YTID, start_seconds, end_seconds, positive_labels; got {row}")
        ytid, start_text, _, label_text = (cell.strip() for cell in row[:4])
        try:
            start = float(start_text)
        except ValueError:
            raise LayoutError(f"{path}:{line}: start_seconds {start_text!r} is not a number") from None
        unknown = [m for m in _split_list(label_text) if m not in mid_to_name]
        if unknown:
            raise LayoutError(f"{path}:{line}: labels {unknown} are not in {labels_csv}")
        if ytid in seen:
            excluded.append((f"{path}:{line}", f"duplicate of {ytid} at line {seen[ytid]}"))
            continue
        seen[ytid] = line
        parsed.append((ytid, start, _ordered_labels((mid_to_name[m] for m in _split_list(label_text)), rank)))
    return parsed


def _index_audio(audio: Path, ytids: set[str]) -> dict[str, list[tuple[Path, str | None]]]:
    """One pass over the audio folder: ytid -> [(path, start text)]."""
    files: dict[str, list[tuple[Path, str | None]]] = defaultdict(list)
    for path in _walk_audio(audio):
        for ytid, start_text in _audioset_name(path.name[: -len(path.suffix)], ytids):
            files[ytid].append((path, start_text))
    return files


def _match_clips(
    rows_by_split: dict[str, list[_Row]], files: dict[str, list[tuple[Path, str | None]]]
) -> tuple[list[ClipRecord], list[str], list[tuple[str, str]]]:
    """Records, missing YouTube ids and the matching files left unused (with the file used instead)."""
    records: list[ClipRecord] = []
    missing: list[str] = []
    used: set[Path] = set()
    candidates: dict[Path, str] = {}
    for split, parsed in rows_by_split.items():
        for ytid, start, labels in parsed:
            # a file naming this segment's start beats one without a start; ties go to path order
            options = sorted(
                ((text is None, path) for path, text in files.get(ytid, ()) if _start_matches(text, start)),
            )
            if not options:
                missing.append(ytid)
                continue
            chosen_path = options[0][1]
            used.add(chosen_path)
            for _, other in options[1:]:
                candidates.setdefault(other, f"{ytid}: {chosen_path.name} used instead")
            records.append(ClipRecord(id=f"{split}/{ytid}", path=str(chosen_path), labels=labels, split=split))
    unused = [(str(path), reason) for path, reason in candidates.items() if path not in used]
    return records, missing, unused


def _subset_per_list(records: list[ClipRecord], chosen: list[str], fraction: float, seed: int) -> list[ClipRecord]:
    """The stratified fraction of each segment list separately, by YouTube id."""
    subset = []
    for split in chosen:
        in_split = [r for r in records if r.split == split]
        subset += _stratified_subset(in_split, fraction, seed, key=lambda r: r.id.split("/", 1)[1])  # by ytid
    return subset


@_reader(
    "audioset",
    segments="segment lists to read (balanced_train, unbalanced_train, eval); default: every one present",
    audio_dir="folder with the audio, relative to root or absolute, searched recursively",
    fraction="keep a class-stratified fraction in (0, 1] of the matched clips of each list (0.1 in the paper)",
    seed="seed of the fraction subset's order",
)
def read_audioset(
    root: str | Path,
    *,
    segments: Sequence[str] | str | None = None,
    audio_dir: str = "audio",
    fraction: float | None = None,
    seed: int = 0,
) -> Layout:
    """AudioSet: ``<list>_segments.csv`` + ``class_labels_indices.csv`` + downloaded clips.

    Labels are the classes' ``display_name``s (readable, and what the metadata documents), and the
    vocabulary is ordered by the ``index`` column of ``class_labels_indices.csv``. Split = list name
    (``balanced_train``, ``unbalanced_train``, ``eval``); id = ``<split>/<ytid>``. Each file is taken
    to hold the 10-s segment itself (what downloaders save), so ``start`` stays 0. Segments whose
    clip was not downloaded go to ``missing`` as their YouTube id; a file name carrying a start
    time that differs from the segment's is another part of the video and does not match.
    """
    # options first: a bad value fails before any disk access
    fraction = _fraction_option(fraction)
    seed = _as_int("seed", seed)
    root = _as_root(root)

    labels_csv = _require(root / "class_labels_indices.csv", "AudioSet")
    mid_to_name, order = _class_labels(labels_csv)
    rank = {name: i for i, name in enumerate(order)}
    chosen = _chosen_lists(root, segments)
    audio = _audio_folder(root, audio_dir)

    # (ytid, start, labels) for every row of each list, duplicates within a list left out
    excluded: list[tuple[str, str]] = []
    rows_by_split = {split: _read_segment_list(root / f"{split}_segments.csv", labels_csv, mid_to_name, rank, excluded) for split in chosen}
    files = _index_audio(audio, {ytid for parsed in rows_by_split.values() for ytid, _, _ in parsed})
    records, missing, unused = _match_clips(rows_by_split, files)
    excluded += unused

    info: dict[str, Any] = {"segments": chosen, "audio_dir": str(audio), "matched": len(records)}
    if fraction is not None and fraction < 1:
        records = _subset_per_list(records, chosen, fraction, seed)
    info.update(fraction=fraction, seed=seed)
    return _finish("audioset", records, order, missing, excluded, info)
