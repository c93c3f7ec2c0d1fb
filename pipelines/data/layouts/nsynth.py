"""NSynth instrument family: ``nsynth-{train,valid,test}/examples.json`` + ``audio/<note_str>.wav``."""

from __future__ import annotations

import json
from pathlib import Path

from .base import ClipRecord, Layout, LayoutError, _as_root, _finish, _reader, _require

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
