"""Types and helpers every layout reader shares; the readers live one per module beside this one.

Nothing here knows a dataset: :class:`ClipRecord`, :class:`Layout`, :class:`LayoutError`, the
:func:`_reader` decorator that documents a reader's options (the registry itself is built in
``pipelines.data.layouts``), and the small path, CSV, option and finishing helpers.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


class LayoutError(ValueError):
    """The root does not hold the expected layout; the message names the missing file or folder."""


@dataclass(frozen=True)
class ClipRecord:
    id: str  # unique and stable within the dataset
    path: str  # absolute path of the source audio file
    labels: tuple[str, ...]  # label names; indices come from Layout.vocabulary
    split: str  # "train", "validation", "test", "all", ...
    fold: int | None = None  # cross-validation fold (IEMOCAP session, US8K fold)
    start: float = 0.0  # seconds into the file where the clip starts
    duration: float | None = None  # seconds to take from ``start``; None = to the end


@dataclass
class Layout:
    dataset: str
    records: list[ClipRecord]
    vocabulary: list[str]  # class names in index order
    missing: list[str] = field(default_factory=list)  # metadata rows without an audio file
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): found but not used by design
    # Added: facts about what was found that do not fit a record, e.g. the Speech Commands version
    # or the AudioSet subset parameters; JSON-serialisable so ingest can store it with the shards.
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Reader options
# ---------------------------------------------------------------------------------------------

Reader = Callable[..., Layout]


@dataclass(frozen=True)
class DatasetOption:
    """One keyword option of a reader, as a command line would list it."""

    name: str
    default: Any
    help: str


@dataclass(frozen=True)
class ReaderSpec:
    """What :func:`_reader` attaches to a reader (as ``reader.layout_spec``) for the registry."""

    name: str
    options: dict[str, DatasetOption]


def _reader(name: str, **help: str) -> Callable[[Reader], Reader]:
    """Mark a reader as dataset ``name``; ``help`` documents each keyword-only option.

    The option list is taken from the function signature so the registry cannot drift from the
    code; the assert makes a missing help text a bug at import time rather than a silent gap.
    ``pipelines.data.layouts`` collects the marked readers into ``DATASETS``.
    """

    def register(fn: Reader) -> Reader:
        params = inspect.signature(fn).parameters
        keywords = {p.name: p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert set(keywords) == set(help), f"{fn.__name__}: help for {sorted(keywords)} needed, got {sorted(help)}"
        fn.layout_spec = ReaderSpec(name, {k: DatasetOption(k, keywords[k].default, help[k]) for k in keywords})  # type: ignore[attr-defined]
        return fn

    return register


def reader_spec(fn: Reader) -> ReaderSpec:
    """The name and options :func:`_reader` gave ``fn``."""
    spec = getattr(fn, "layout_spec", None)
    if not isinstance(spec, ReaderSpec):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not a layout reader (no @_reader)")
    return spec


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
    """A metadata file's text; a file that is not UTF-8 fails naming it."""
    try:
        # utf-8-sig: spreadsheet exports of manifests often start with a BOM that would rename column 1
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise LayoutError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); metadata files are UTF-8 CSV or text") from None
    return io.StringIO(text, newline="")


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
    "train": "train",
    "training": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
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
# Splits and manifests (VoxForge and the generic CSV)
# ---------------------------------------------------------------------------------------------

_SPLITS = ("train", "validation", "test")


def _manifest_path(root: Path, manifest: str | Path | None, default: str) -> Path:
    # a relative manifest is relative to the root, like the default and the paths inside it
    path = Path(os.path.expanduser(os.fspath(manifest))) if manifest is not None else Path(default)
    return path if path.is_absolute() else root / path


OUTSIDE_ROOT = "outside --root (pass --allow-outside-root to ingest it)"


def _manifest_audio(root: Path, text: str) -> tuple[str, Path]:
    """(id, absolute path) of a manifest path relative to the root or absolute."""
    path = Path(os.path.expanduser(text))
    path = Path(os.path.abspath(path if path.is_absolute() else root / path))
    return _rel(path, root), path


def _outside_root(root: Path, path: Path) -> bool:
    """Whether a metadata path leaves the root: ``..``, an absolute path elsewhere, or a symlink (the
    file or a folder on the way) that points out of it."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) != real_root
