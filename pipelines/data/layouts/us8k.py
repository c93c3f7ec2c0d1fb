"""UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold{1..10}/<slice_file_name>``."""

from __future__ import annotations

from pathlib import Path

from .base import ClipRecord, Layout, LayoutError, _as_root, _finish, _read_table, _reader, _require


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
            raise LayoutError(f"{table}:{line}: class {row['class']!r} has classID {class_id} here and {class_ids[row['class']]} before")
        clip_id = f"fold{fold}/{row['slice_file_name']}"
        path = root / "audio" / clip_id
        if not path.is_file():
            missing.append(clip_id)
            continue
        records.append(ClipRecord(id=clip_id, path=str(path), labels=(row["class"],), split="all", fold=fold))
    order = sorted(class_ids, key=lambda name: (class_ids[name], name))
    return _finish("us8k", records, order, missing)
