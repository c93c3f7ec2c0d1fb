"""VoxForge language identification from a manifest (VoxForge has no official split)."""

from __future__ import annotations

from pathlib import Path

from .base import (
    _SPLITS,
    OUTSIDE_ROOT,
    ClipRecord,
    Layout,
    LayoutError,
    _as_root,
    _finish,
    _manifest_audio,
    _manifest_path,
    _normalise_split,
    _outside_root,
    _read_table,
    _reader,
    _require,
)

VOXFORGE_LANGUAGES = ("de", "en", "es", "fr", "it", "ru")


@_reader(
    "voxforge",
    manifest="CSV with columns path,language,split (default <root>/voxforge.csv)",
    allow_outside_root="ingest rows whose path leaves the root (.., absolute elsewhere, a symlink out); default: excluded",
)
def read_voxforge(root: str | Path, *, manifest: str | None = None, allow_outside_root: bool = False) -> Layout:
    """VoxForge language id from a manifest: label = language among de, en, es, fr, it, ru.

    VoxForge has no official split, so the manifest fixes it; ``val``/``valid``/``dev`` read as
    ``validation``. Rows of other languages go to ``excluded``, and so do paths that leave the root
    unless ``allow_outside_root``; id = the path relative to root.
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
        if not allow_outside_root and _outside_root(root, path):
            excluded.append((str(path), OUTSIDE_ROOT))
            continue
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
