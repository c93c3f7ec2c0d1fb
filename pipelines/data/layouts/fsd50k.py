"""FSD50K: ``FSD50K.ground_truth/{dev,eval,vocabulary}.csv`` + ``FSD50K.{dev,eval}_audio``."""

from __future__ import annotations

import csv
from pathlib import Path

from .base import (
    ClipRecord,
    Layout,
    LayoutError,
    _as_root,
    _finish,
    _open_text,
    _ordered_labels,
    _read_table,
    _reader,
    _require,
    _split_list,
)


def _vocabulary(vocabulary_csv: Path) -> dict[str, int]:
    """``label -> index`` of ``vocabulary.csv``, which has no header: ``index,label,mid``."""
    index_of: dict[str, int] = {}
    with _open_text(vocabulary_csv) as handle:
        for line, row in enumerate(csv.reader(handle), 1):
            if not row:
                continue
            try:
                index_of[row[1].strip()] = int(row[0])
            except (IndexError, ValueError):
                raise LayoutError(f"{vocabulary_csv}:{line}: expected index,label,mid (no header); got {row}") from None
    return index_of


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

    index_of = _vocabulary(vocabulary_csv)
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
            records.append(ClipRecord(id=f"{part}/{row['fname']}", path=str(path), labels=_ordered_labels(labels, rank), split=split))
    return _finish("fsd50k", records, order, missing)
