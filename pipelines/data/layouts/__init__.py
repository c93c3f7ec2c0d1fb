"""Dataset layouts: find every clip of a dataset in its published folder layout.

Pure Python (no Ray, no audio decoding): each reader walks a root folder and its metadata files
and returns a :class:`Layout` of :class:`ClipRecord` rows that ``pipelines.ingest`` turns into
Parquet shards. A missing metadata file or a wrong root fails at once with :class:`LayoutError`
naming what was expected.

Entry point: :func:`discover` (``discover("fsd50k", "/data/FSD50K")``). :data:`DATASETS` maps each
dataset name to its reader and :func:`dataset_options` lists the options a reader accepts, so a
command line can offer them. Conventions shared by every reader:

* records are sorted by ``id`` and ids are unique and stable (derived from relative paths or
  dataset ids, never from the order files were found);
* paths are absolute (``os.path.abspath`` of the root, symlinks kept as given);
* ``vocabulary`` lists exactly the labels some record uses, in the dataset's documented order
  (so a partial download gives a shorter vocabulary, never an unused class);
* metadata rows whose audio file is absent go to ``Layout.missing``; files found but left out on
  purpose (an emotion outside the 4 classes, a duplicate) go to ``Layout.excluded``;
* audio files that no metadata refers to are ignored, and audio is never decoded: a corrupt file
  is still a record here, and the decoding stage decides what to do with it. The one exception is
  Speech Commands' ``_background_noise_``: its few WAV headers are read to know how long the files
  are, because the ``_silence_`` class is cut from them at offsets that must lie inside the file.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import soundfile

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


class LayoutError(ValueError):
    """The root does not hold the expected layout; the message names the missing file or folder."""


@dataclass(frozen=True)
class ClipRecord:
    id: str                      # unique and stable within the dataset
    path: str                    # absolute path of the source audio file
    labels: tuple[str, ...]      # label names; indices come from Layout.vocabulary
    split: str                   # "train", "validation", "test", "all", ...
    fold: int | None = None      # cross-validation fold (IEMOCAP session, US8K fold)
    start: float = 0.0           # seconds into the file where the clip starts
    duration: float | None = None  # seconds to take from ``start``; None = to the end


@dataclass
class Layout:
    dataset: str
    records: list[ClipRecord]
    vocabulary: list[str]                                      # class names in index order
    missing: list[str] = field(default_factory=list)           # metadata rows without an audio file
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): found but not used by design
    # Added: facts about what was found that do not fit a record, e.g. the Speech Commands version
    # or the AudioSet subset parameters; JSON-serialisable so ingest can store it with the shards.
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Registry and entry point
# ---------------------------------------------------------------------------------------------

Reader = Callable[..., Layout]


@dataclass(frozen=True)
class DatasetOption:
    """One keyword option of a reader, as a command line would list it."""

    name: str
    default: Any
    help: str


DATASETS: dict[str, Reader] = {}
_OPTIONS: dict[str, dict[str, DatasetOption]] = {}


def _reader(name: str, **help: str) -> Callable[[Reader], Reader]:
    """Register a reader under ``name``; ``help`` documents each keyword-only option.

    The option list is taken from the function signature so the registry cannot drift from the
    code; the assert makes a missing help text a bug at import time rather than a silent gap.
    """

    def register(fn: Reader) -> Reader:
        params = inspect.signature(fn).parameters
        keywords = {p.name: p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert set(keywords) == set(help), f"{fn.__name__}: help for {sorted(keywords)} needed, got {sorted(help)}"
        _OPTIONS[name] = {k: DatasetOption(k, keywords[k].default, help[k]) for k in keywords}
        DATASETS[name] = fn
        return fn

    return register


def _known_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise LayoutError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(sorted(DATASETS))}")
    return dataset


def dataset_options(dataset: str) -> dict[str, DatasetOption]:
    """The options ``discover(dataset, root, **options)`` accepts, by name, with defaults and help."""
    return dict(_OPTIONS[_known_dataset(dataset)])


def discover(dataset: str, root: str | Path, **options: Any) -> Layout:
    """Read ``dataset``'s layout under ``root``; see :data:`DATASETS` and :func:`dataset_options`.

    Raises :class:`LayoutError` for an unknown dataset or option (naming the valid ones), a root
    that does not exist, or missing metadata (naming the expected path).
    """
    valid = dataset_options(dataset)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise LayoutError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {dataset}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return DATASETS[dataset](root, **options)


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _as_root(root: str | Path) -> Path:
    """Absolute root, checked to be a folder. abspath (not resolve) keeps user symlinks in paths."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.exists():
        raise LayoutError(f"root {path} does not exist")
    if not path.is_dir():
        raise LayoutError(f"root {path} is not a folder")
    return path


def _require(path: Path, what: str) -> Path:
    """``path`` must exist; the message says which folder --root should have been."""
    if not path.exists():
        raise LayoutError(f"{path} not found: is --root the {what} folder?")
    return path


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def _walk_audio(folder: Path) -> Iterator[Path]:
    """Audio files under ``folder`` (recursively, following symlinks), in sorted order.

    Hidden entries are skipped (macOS ``._*`` resource forks ship inside some dataset archives and
    are not audio). Symlinked folders are followed because datasets are often assembled from
    links, and (device, inode) pairs guard against link cycles.
    """
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            stat = current.stat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) in seen:
            continue
        seen.add((stat.st_dev, stat.st_ino))
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subdirs.append(Path(entry.path))
            elif _is_audio(entry.name) and entry.is_file():
                yield Path(entry.path)
        stack.extend(reversed(subdirs))  # depth-first, in name order


def _rel(path: Path, root: Path) -> str:
    """POSIX relative path when ``path`` is under ``root``, else the absolute path: a stable id."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _open_text(path: Path) -> TextIO:
    # utf-8-sig: spreadsheet exports of manifests often start with a BOM that would rename column 1
    return open(path, encoding="utf-8-sig", newline="")


def _read_table(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows of a headed CSV as (line number, row) pairs; a missing column names the columns found."""
    with _open_text(path) as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = columns
        absent = [c for c in required if c not in columns]
        if absent:
            raise LayoutError(
                f"{path}: missing column{'s' if len(absent) > 1 else ''} {', '.join(absent)}; "
                f"columns found: {', '.join(columns) or '(none: empty file)'}"
            )
        rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}) for row in reader]
    return columns, rows


def _split_list(value: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in value.split(sep) if part.strip()]


def _ordered_labels(labels: Iterable[str], order: dict[str, int]) -> tuple[str, ...]:
    """Deduplicated labels in vocabulary order, so equal label sets compare equal."""
    return tuple(sorted(set(labels), key=lambda label: (order.get(label, len(order)), label)))


_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "val": "validation", "valid": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def _normalise_split(value: str) -> str:
    return _SPLIT_ALIASES.get(value.strip().lower(), value.strip())


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LayoutError(f"option {name} must be a number, got {value!r}") from None


def _as_int(name: str, value: Any) -> int:
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise LayoutError(f"option {name} must be an integer, got {value!r}") from None


def _as_names(name: str, value: Any, valid: Sequence[str]) -> tuple[str, ...]:
    """A tuple of choices from a sequence or a comma-separated string (as a CLI passes it)."""
    items = _split_list(value) if isinstance(value, str) else [str(v) for v in value]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise LayoutError(f"option {name}={value!r}: choose one or more of {', '.join(valid)}")
    return tuple(dict.fromkeys(items))


def _finish(
    dataset: str,
    records: list[ClipRecord],
    order: Sequence[str] | None,
    missing: Iterable[str] = (),
    excluded: Iterable[tuple[str, str]] = (),
    info: dict[str, Any] | None = None,
) -> Layout:
    """Sort, check ids are unique and build the vocabulary from the labels actually used.

    ``order`` is the dataset's documented class order (None = alphabetical). A label outside it
    would mean a reader bug, so it fails loudly rather than being appended somewhere.
    """
    records = sorted(records, key=lambda r: r.id)
    for previous, record in zip(records, records[1:]):
        if previous.id == record.id:
            raise LayoutError(f"{dataset}: two clips share the id {record.id!r}")
    used = {label for record in records for label in record.labels}
    if order is None:
        vocabulary = sorted(used)
    else:
        unknown = used - set(order)
        if unknown:
            raise LayoutError(f"{dataset}: labels {sorted(unknown)} are not in the dataset's class list")
        vocabulary = [label for label in order if label in used]
    return Layout(
        dataset=dataset,
        records=records,
        vocabulary=vocabulary,
        missing=sorted(set(missing)),
        excluded=sorted(set(excluded)),
        info=info or {},
    )


# ---------------------------------------------------------------------------------------------
# AudioSet
# ---------------------------------------------------------------------------------------------

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


def _stratified_subset(
    records: list[ClipRecord], fraction: float, seed: int, key: Callable[[ClipRecord], str]
) -> list[ClipRecord]:
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
    if fraction is not None:
        fraction = _as_float("fraction", fraction)
        if not 0 < fraction <= 1:
            raise LayoutError(f"option fraction must be in (0, 1], got {fraction}")
    seed = _as_int("seed", seed)
    root = _as_root(root)

    labels_csv = _require(root / "class_labels_indices.csv", "AudioSet")
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
    order = sorted(index_of, key=index_of.__getitem__)
    rank = {name: i for i, name in enumerate(order)}

    if segments is None:
        chosen = [s for s in AUDIOSET_SEGMENTS if (root / f"{s}_segments.csv").exists()]
        if not chosen:
            raise LayoutError(
                f"no segment list in {root}: expected one of "
                + ", ".join(f"{s}_segments.csv" for s in AUDIOSET_SEGMENTS)
                + "; is --root the AudioSet folder?"
            )
    else:
        chosen = list(_as_names("segments", segments, AUDIOSET_SEGMENTS))
        for name in chosen:
            _require(root / f"{name}_segments.csv", "AudioSet")

    audio = Path(audio_dir) if os.path.isabs(audio_dir) else root / audio_dir
    if not audio.is_dir():
        raise LayoutError(f"{audio} not found: the AudioSet audio folder (option audio_dir) is missing")

    # (split, ytid, start, labels) for every row, duplicates within a list left out
    rows_by_split: dict[str, list[tuple[str, float, tuple[str, ...]]]] = {}
    excluded: list[tuple[str, str]] = []
    for split in chosen:
        path = root / f"{split}_segments.csv"
        seen: dict[str, int] = {}
        parsed = []
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
        rows_by_split[split] = parsed

    # one pass over the audio folder: ytid -> [(path, start text)]
    ytids = {ytid for parsed in rows_by_split.values() for ytid, _, _ in parsed}
    files: dict[str, list[tuple[Path, str | None]]] = defaultdict(list)
    for path in _walk_audio(audio):
        for ytid, start_text in _audioset_name(path.name[: -len(path.suffix)], ytids):
            files[ytid].append((path, start_text))

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
    excluded += [(str(path), reason) for path, reason in candidates.items() if path not in used]

    info: dict[str, Any] = {"segments": chosen, "audio_dir": str(audio), "matched": len(records)}
    if fraction is not None and fraction < 1:
        subset = []
        for split in chosen:
            in_split = [r for r in records if r.split == split]
            subset += _stratified_subset(in_split, fraction, seed, key=lambda r: r.id.split("/", 1)[1])  # by ytid
        records = subset
    info.update(fraction=fraction, seed=seed)
    return _finish("audioset", records, order, missing, excluded, info)


# ---------------------------------------------------------------------------------------------
# FSD50K
# ---------------------------------------------------------------------------------------------


@_reader("fsd50k")
def read_fsd50k(root: str | Path) -> Layout:
    """FSD50K: ``FSD50K.ground_truth/{dev,eval,vocabulary}.csv`` + ``FSD50K.{dev,eval}_audio``.

    dev rows split into ``train``/``validation`` by their ``split`` column, eval rows are ``test``.
    Labels are the names of ``labels`` (with the dataset's underscores), ordered by the index in
    ``vocabulary.csv`` (which has no header: ``index,label,mid``). Ids: ``dev/<fname>``, ``eval/<fname>``.
    """
    root = _as_root(root)
    truth = root / "FSD50K.ground_truth"
    dev_csv = _require(truth / "dev.csv", "FSD50K")
    eval_csv = _require(truth / "eval.csv", "FSD50K")
    vocabulary_csv = _require(truth / "vocabulary.csv", "FSD50K")

    index_of: dict[str, int] = {}
    with _open_text(vocabulary_csv) as handle:
        for line, row in enumerate(csv.reader(handle), 1):
            if not row:
                continue
            try:
                index_of[row[1].strip()] = int(row[0])
            except (IndexError, ValueError):
                raise LayoutError(f"{vocabulary_csv}:{line}: expected index,label,mid (no header); got {row}") from None
    order = sorted(index_of, key=index_of.__getitem__)
    rank = {name: i for i, name in enumerate(order)}

    dev_audio, eval_audio = root / "FSD50K.dev_audio", root / "FSD50K.eval_audio"
    if not dev_audio.is_dir() and not eval_audio.is_dir():
        raise LayoutError(f"{dev_audio} not found (nor {eval_audio.name}): is --root the FSD50K folder?")

    records: list[ClipRecord] = []
    missing: list[str] = []
    for part, table, audio, columns in (
        ("dev", dev_csv, dev_audio, ("fname", "labels", "split")),
        ("eval", eval_csv, eval_audio, ("fname", "labels")),
    ):
        for line, row in _read_table(table, columns)[1]:
            labels = _split_list(row["labels"])
            unknown = [label for label in labels if label not in index_of]
            if unknown:
                raise LayoutError(f"{table}:{line}: labels {unknown} are not in {vocabulary_csv}")
            if part == "dev":
                split = {"train": "train", "val": "validation"}.get(row["split"])
                if split is None:
                    raise LayoutError(f"{table}:{line}: split {row['split']!r} is neither train nor val")
            else:
                split = "test"
            path = audio / f"{row['fname']}.wav"
            if not path.is_file():
                missing.append(f"{part}/{row['fname']}")
                continue
            records.append(
                ClipRecord(id=f"{part}/{row['fname']}", path=str(path), labels=_ordered_labels(labels, rank), split=split)
            )
    return _finish("fsd50k", records, order, missing)


# ---------------------------------------------------------------------------------------------
# Speech Commands
# ---------------------------------------------------------------------------------------------

SPEECH_COMMANDS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
_V2_ONLY_WORDS = ("backward", "forward", "follow", "learn", "visual")
_SPLITS = ("train", "validation", "test")


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
    words = sorted(
        entry.name for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(("_", "."))
    )
    if not words:
        raise LayoutError(f"no word folders in {root}: is --root the Speech Commands folder?")
    version = 2 if any(word in words for word in _V2_ONLY_WORDS) else 1

    split_of: dict[str, str] = {}
    for split, list_path in lists.items():
        with _open_text(list_path) as handle:
            for line in handle:
                if line.strip():
                    split_of[line.strip().replace("\\", "/")] = split

    found: set[str] = set()
    records: list[ClipRecord] = []
    for word in words:
        label = word if classes == "all" or word in SPEECH_COMMANDS_WORDS else UNKNOWN
        for path in _walk_audio(root / word):
            rel = _rel(path, root)
            found.add(rel)
            records.append(ClipRecord(id=rel, path=str(path), labels=(label,), split=split_of.get(rel, "train")))
    missing = [rel for rel in split_of if rel not in found]
    excluded: list[tuple[str, str]] = []
    info: dict[str, Any] = {"version": version, "classes": classes, "words": words}

    if classes == "12":
        sizes = Counter(record.split for record in records)
        # one class's worth among 11 others; n / 11 is never a tie, so round() is exact here
        wanted = {split: round(sizes[split] / 11) for split in _SPLITS}
        noise: list[tuple[Path, int]] = []
        noise_dir = root / "_background_noise_"
        if noise_dir.is_dir():
            for path in _walk_audio(noise_dir):
                seconds = _audio_seconds(path)
                if seconds is None or seconds < 1:
                    excluded.append((str(path), "background noise without a readable WAV header of at least 1 s"))
                else:
                    noise.append((path, int(seconds * 1000)))
        placed = _silence_segments(noise, wanted) if noise else {}
        for split, segments in placed.items():
            for path, offset in segments:
                records.append(ClipRecord(
                    id=f"{_rel(path, root)}@{offset / 1000:.3f}", path=str(path), labels=(SILENCE,),
                    split=split, start=offset / 1000, duration=1.0,
                ))
        info["silence"] = {split: len(placed.get(split, [])) for split in _SPLITS}
        info["silence_wanted"] = wanted
        order: list[str] | None = [*SPEECH_COMMANDS_WORDS, SILENCE, UNKNOWN]
    else:
        order = None
    return _finish("speech_commands", records, order, missing, excluded, info)


# ---------------------------------------------------------------------------------------------
# VoxCeleb1
# ---------------------------------------------------------------------------------------------


@_reader("voxceleb1", audio_dir="folder holding idXXXXX/<video>/<n>.wav, relative to root or absolute")
def read_voxceleb1(root: str | Path, *, audio_dir: str = "wav") -> Layout:
    """VoxCeleb1 identification: ``iden_split.txt`` (1 = train, 2 = validation, 3 = test) + ``wav/``.

    Label = speaker id (the first path component), vocabulary sorted; id = the listed path.
    """
    root = _as_root(root)
    split_file = _require(root / "iden_split.txt", "VoxCeleb1")
    audio = Path(audio_dir) if os.path.isabs(audio_dir) else root / audio_dir
    if not audio.is_dir():
        raise LayoutError(f"{audio} not found: is --root the VoxCeleb1 folder (option audio_dir)?")
    splits = {"1": "train", "2": "validation", "3": "test"}
    records: list[ClipRecord] = []
    missing: list[str] = []
    with _open_text(split_file) as handle:
        for line, text in enumerate(handle, 1):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[0] not in splits or "/" not in parts[1]:
                raise LayoutError(f"{split_file}:{line}: expected '<1|2|3> idXXXXX/<video>/<n>.wav', got {text.strip()!r}")
            rel = parts[1]
            path = audio / rel
            if not path.is_file():
                missing.append(rel)
                continue
            records.append(ClipRecord(id=rel, path=str(path), labels=(rel.split("/", 1)[0],), split=splits[parts[0]]))
    return _finish("voxceleb1", records, None, missing)


# ---------------------------------------------------------------------------------------------
# IEMOCAP
# ---------------------------------------------------------------------------------------------

IEMOCAP_CLASSES = ("ang", "hap", "neu", "sad")
_IEMOCAP_LINE = re.compile(r"\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[")


@_reader("iemocap")
def read_iemocap(root: str | Path) -> Layout:
    """IEMOCAP 4-class emotion: ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` + sentence WAVs.

    Only the utterance lines (``[start - end]\\tutterance\\tlabel\\t[V, A, D]``) are read; ``exc`` is
    merged into ``hap`` and utterances of other labels go to ``excluded``. fold = session (for
    leave-one-session-out), split ``all``, id = utterance name. Vocabulary: ang, hap, neu, sad.
    """
    root = _as_root(root)
    sessions = [n for n in range(1, 6) if (root / f"Session{n}").is_dir()]
    if not sessions:
        raise LayoutError(f"{root / 'Session1' / 'dialog' / 'EmoEvaluation'} not found: is --root the IEMOCAP folder?")
    records: list[ClipRecord] = []
    missing: list[str] = []
    excluded: list[tuple[str, str]] = []
    for session in sessions:
        evaluation = _require(root / f"Session{session}" / "dialog" / "EmoEvaluation", "IEMOCAP")
        # only the top-level files: Categorical/, Attribute/, Self-evaluation/ hold per-annotator copies
        for txt in sorted(p for p in evaluation.iterdir() if p.suffix == ".txt" and p.is_file() and not p.name.startswith(".")):
            dialog = txt.stem
            with open(txt, encoding="utf-8", errors="replace") as handle:
                for text in handle:
                    match = _IEMOCAP_LINE.match(text)
                    if not match:
                        continue  # headers, annotator lines, blank lines
                    utterance, emotion = match[3], match[4]
                    path = root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utterance}.wav"
                    label = "hap" if emotion == "exc" else emotion
                    if label not in IEMOCAP_CLASSES:
                        excluded.append((str(path), f"label {emotion!r} is not one of the 4 classes"))
                    elif not path.is_file():
                        missing.append(utterance)
                    else:
                        records.append(ClipRecord(id=utterance, path=str(path), labels=(label,), split="all", fold=session))
    return _finish("iemocap", records, IEMOCAP_CLASSES, missing, excluded, {"sessions": sessions})


# ---------------------------------------------------------------------------------------------
# Manifests: VoxForge and the generic CSV
# ---------------------------------------------------------------------------------------------

VOXFORGE_LANGUAGES = ("de", "en", "es", "fr", "it", "ru")


def _manifest_path(root: Path, manifest: str | Path | None, default: str) -> Path:
    # a relative manifest is relative to the root, like the default and the paths inside it
    path = Path(os.path.expanduser(os.fspath(manifest))) if manifest is not None else Path(default)
    return path if path.is_absolute() else root / path


def _manifest_audio(root: Path, text: str) -> tuple[str, Path]:
    """(id, absolute path) of a manifest path relative to the root or absolute."""
    path = Path(os.path.expanduser(text))
    path = Path(os.path.abspath(path if path.is_absolute() else root / path))
    return _rel(path, root), path


@_reader("voxforge", manifest="CSV with columns path,language,split (default <root>/voxforge.csv)")
def read_voxforge(root: str | Path, *, manifest: str | None = None) -> Layout:
    """VoxForge language id from a manifest: label = language among de, en, es, fr, it, ru.

    VoxForge has no official split, so the manifest fixes it; ``val``/``valid``/``dev`` read as
    ``validation``. Rows of other languages go to ``excluded``; id = the path relative to root.
    """
    root = _as_root(root)
    table = _manifest_path(root, manifest, "voxforge.csv")
    _require(table, "VoxForge (holding voxforge.csv; or pass option manifest)")
    records: list[ClipRecord] = []
    missing: list[str] = []
    excluded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line, row in _read_table(table, ("path", "language", "split"))[1]:
        language, split = row["language"].lower(), _normalise_split(row["split"])
        if split not in _SPLITS:
            raise LayoutError(f"{table}:{line}: split {row['split']!r} is not train, validation (val, valid, dev) or test")
        clip_id, path = _manifest_audio(root, row["path"])
        if language not in VOXFORGE_LANGUAGES:
            excluded.append((str(path), f"language {row['language']!r} is not one of {', '.join(VOXFORGE_LANGUAGES)}"))
        elif clip_id in seen:
            excluded.append((str(path), f"listed again at {table.name}:{line}"))
        elif not path.is_file():
            missing.append(clip_id)
        else:
            seen.add(clip_id)
            records.append(ClipRecord(id=clip_id, path=str(path), labels=(language,), split=split))
    return _finish("voxforge", records, VOXFORGE_LANGUAGES, missing, excluded)


@_reader(
    "manifest",
    manifest="CSV with path and label (or labels, ';'-separated), optional split, fold (default <root>/manifest.csv)",
)
def read_manifest(root: str | Path, *, manifest: str | None = None) -> Layout:
    """Any dataset described by a CSV: ``path`` + ``label`` or ``labels`` (``a;b``) [+ ``split``, ``fold``].

    Paths are relative to root or absolute; split defaults to ``train`` (aliases normalised as for
    VoxForge); vocabulary sorted; id = the path relative to root (absolute if outside it).
    """
    root = _as_root(root)
    table = _require(_manifest_path(root, manifest, "manifest.csv"), "dataset (holding manifest.csv; or pass option manifest)")
    with _open_text(table) as handle:
        columns = [c.strip() for c in next(csv.reader(handle), [])]
    label_columns = [c for c in ("label", "labels") if c in columns]
    if "path" not in columns or len(label_columns) != 1:
        raise LayoutError(
            f"{table}: needs a path column and exactly one of label, labels; "
            f"columns found: {', '.join(columns) or '(none: empty file)'}"
        )
    label_column = label_columns[0]
    records: list[ClipRecord] = []
    missing: list[str] = []
    excluded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line, row in _read_table(table, ("path", label_column))[1]:
        if not row["path"]:
            raise LayoutError(f"{table}:{line}: empty path")
        text = row[label_column]
        labels = _split_list(text, ";") if label_column == "labels" else [text] if text else []
        split = _normalise_split(row.get("split") or "train")
        fold: int | None = None
        if row.get("fold"):
            try:
                fold = int(row["fold"])
            except ValueError:
                raise LayoutError(f"{table}:{line}: fold {row['fold']!r} is not an integer") from None
        clip_id, path = _manifest_audio(root, row["path"])
        if clip_id in seen:
            excluded.append((str(path), f"listed again at {table.name}:{line}"))
        elif not path.is_file():
            missing.append(clip_id)
        else:
            seen.add(clip_id)
            records.append(ClipRecord(id=clip_id, path=str(path), labels=_ordered_labels(labels, {}), split=split, fold=fold))
    return _finish("manifest", records, None, missing, excluded, {"manifest": str(table)})


# ---------------------------------------------------------------------------------------------
# NSynth, UrbanSound8K, class folders
# ---------------------------------------------------------------------------------------------

NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")
_NSYNTH_SPLITS = {"nsynth-train": "train", "nsynth-valid": "validation", "nsynth-test": "test"}


@_reader("nsynth")
def read_nsynth(root: str | Path) -> Layout:
    """NSynth instrument family: ``nsynth-{train,valid,test}/examples.json`` + ``audio/<note_str>.wav``.

    Any subset of the three folders may be present. Label = ``instrument_family_str``; vocabulary
    in the standard family order (index = ``instrument_family``). Id = ``<folder>/<note_str>``.
    """
    root = _as_root(root)
    folders = [name for name in _NSYNTH_SPLITS if (root / name).is_dir()]
    if not folders:
        raise LayoutError(
            f"{root / 'nsynth-train' / 'examples.json'} not found (nor nsynth-valid, nsynth-test): is --root the NSynth folder?"
        )
    records: list[ClipRecord] = []
    missing: list[str] = []
    for folder in folders:
        examples_json = _require(root / folder / "examples.json", "NSynth")
        try:
            with open(examples_json, encoding="utf-8") as handle:
                examples = json.load(handle)
        except json.JSONDecodeError as error:
            raise LayoutError(f"{examples_json}: not valid JSON ({error})") from None
        if not isinstance(examples, dict):
            raise LayoutError(f"{examples_json}: expected an object keyed by note_str")
        for note, example in examples.items():
            family = example.get("instrument_family_str") if isinstance(example, dict) else None
            if family not in NSYNTH_FAMILIES:
                raise LayoutError(f"{examples_json}: {note}: instrument_family_str {family!r} is not an NSynth family")
            path = root / folder / "audio" / f"{note}.wav"
            if not path.is_file():
                missing.append(f"{folder}/{note}")
                continue
            records.append(ClipRecord(id=f"{folder}/{note}", path=str(path), labels=(family,), split=_NSYNTH_SPLITS[folder]))
    return _finish("nsynth", records, NSYNTH_FAMILIES, missing, info={"folders": folders})


@_reader("us8k")
def read_us8k(root: str | Path) -> Layout:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold{1..10}/<slice_file_name>``.

    The 10 predefined folds are kept (split ``all``) for 10-fold cross-validation; label = ``class``,
    vocabulary ordered by ``classID``; id = ``fold<n>/<slice_file_name>``.
    """
    root = _as_root(root)
    table = _require(root / "metadata" / "UrbanSound8K.csv", "UrbanSound8K")
    if not (root / "audio").is_dir():
        raise LayoutError(f"{root / 'audio'} not found: is --root the UrbanSound8K folder?")
    class_ids: dict[str, int] = {}
    records: list[ClipRecord] = []
    missing: list[str] = []
    for line, row in _read_table(table, ("slice_file_name", "fold", "classID", "class"))[1]:
        try:
            fold, class_id = int(row["fold"]), int(row["classID"])
        except ValueError:
            raise LayoutError(f"{table}:{line}: fold {row['fold']!r} and classID {row['classID']!r} must be integers") from None
        if class_ids.setdefault(row["class"], class_id) != class_id:
            raise LayoutError(
                f"{table}:{line}: class {row['class']!r} has classID {class_id} here and {class_ids[row['class']]} before"
            )
        clip_id = f"fold{fold}/{row['slice_file_name']}"
        path = root / "audio" / clip_id
        if not path.is_file():
            missing.append(clip_id)
            continue
        records.append(ClipRecord(id=clip_id, path=str(path), labels=(row["class"],), split="all", fold=fold))
    order = sorted(class_ids, key=lambda name: (class_ids[name], name))
    return _finish("us8k", records, order, missing)


@_reader("folder", split="split given to every clip")
def read_folder(root: str | Path, *, split: str = "train") -> Layout:
    """One sub-folder per label, audio anywhere inside it; label = folder name, vocabulary sorted.

    Files directly under root (not in a label folder) and non-audio files are ignored; id = the
    path relative to root.
    """
    root = _as_root(root)
    records = [
        ClipRecord(id=_rel(path, root), path=str(path), labels=(label.name,), split=split)
        for label in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in _walk_audio(label)
    ]
    if not records:
        raise LayoutError(
            f"no audio ({', '.join(AUDIO_EXTENSIONS)}) in label sub-folders of {root}: expected <root>/<label>/<file>"
        )
    return _finish("folder", records, None, info={"split": split})
