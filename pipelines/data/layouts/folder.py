"""Class folders: one sub-folder per label, audio anywhere inside it."""

from __future__ import annotations

from pathlib import Path

from .base import AUDIO_EXTENSIONS, ClipRecord, Layout, LayoutError, _as_root, _finish, _reader, _rel, _walk_audio


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
        raise LayoutError(f"no audio ({', '.join(AUDIO_EXTENSIONS)}) in label sub-folders of {root}: expected <root>/<label>/<file>")
    return _finish("folder", records, None, info={"split": split})
