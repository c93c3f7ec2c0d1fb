"""Any dataset described by a CSV manifest: ``path`` + ``label`` or ``labels`` [+ ``split``, ``fold``]."""

from __future__ import annotations

import csv
from pathlib import Path

from .base import (
    OUTSIDE_ROOT,
    ClipRecord,
    Layout,
    LayoutError,
    _as_root,
    _finish,
    _manifest_audio,
    _manifest_path,
    _normalise_split,
    _open_text,
    _ordered_labels,
    _outside_root,
    _read_table,
    _reader,
    _require,
    _split_list,
)


def _label_column(table: Path) -> str:
    """``label`` or ``labels``, whichever the header has; it must have a path column and exactly one."""
    with _open_text(table) as handle:
        columns = [c.strip() for c in next(csv.reader(handle), [])]
    label_columns = [c for c in ("label", "labels") if c in columns]
    if "path" not in columns or len(label_columns) != 1:
        raise LayoutError(
            f"{table}: needs a path column and exactly one of label, labels; columns found: {', '.join(columns) or '(none: empty file)'}"
        )
    return label_columns[0]


def _fold(table: Path, line: int, row: dict[str, str]) -> int | None:
    if not row.get("fold"):
        return None
    try:
        return int(row["fold"])
    except ValueError:
        raise LayoutError(f"{table}:{line}: fold {row['fold']!r} is not an integer") from None


@_reader(
    "manifest",
    manifest="CSV with path and label (or labels, ';'-separated), optional split, fold (default <root>/manifest.csv)",
    allow_outside_root="ingest rows whose path leaves the root (.., absolute elsewhere, a symlink out); default: excluded",
)
def read_manifest(root: str | Path, *, manifest: str | None = None, allow_outside_root: bool = False) -> Layout:
    """Any dataset described by a CSV: ``path`` + ``label`` or ``labels`` (``a;b``) [+ ``split``, ``fold``].

    Paths are relative to root or absolute; split defaults to ``train`` (aliases normalised as for
    VoxForge); vocabulary sorted; id = the path relative to root. A path that leaves the root (``..``,
    an absolute path elsewhere, a symlink pointing out) is excluded with its reason unless
    ``allow_outside_root`` (its id is then the absolute path).
    """
    root = _as_root(root)
    table = _require(_manifest_path(root, manifest, "manifest.csv"), "dataset (holding manifest.csv; or pass option manifest)")
    label_column = _label_column(table)
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
        fold = _fold(table, line, row)
        clip_id, path = _manifest_audio(root, row["path"])
        if not allow_outside_root and _outside_root(root, path):
            excluded.append((str(path), OUTSIDE_ROOT))
            continue
        if clip_id in seen:
            excluded.append((str(path), f"listed again at {table.name}:{line}"))
        elif not path.is_file():
            missing.append(clip_id)
        else:
            seen.add(clip_id)
            records.append(ClipRecord(id=clip_id, path=str(path), labels=_ordered_labels(labels, {}), split=split, fold=fold))
    return _finish("manifest", records, None, missing, excluded, {"manifest": str(table)})
