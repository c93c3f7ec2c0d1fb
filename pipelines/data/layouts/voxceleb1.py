"""VoxCeleb1 speaker identification: ``iden_split.txt`` + ``wav/idXXXXX/<video>/<n>.wav``."""

from __future__ import annotations

import os
from pathlib import Path

from .base import ClipRecord, Layout, LayoutError, _as_root, _finish, _open_text, _reader, _require


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
