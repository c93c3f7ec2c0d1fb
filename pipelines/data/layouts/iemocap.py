"""IEMOCAP 4-class emotion: ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` + sentence WAVs."""

from __future__ import annotations

import re
from pathlib import Path

from .base import ClipRecord, Layout, LayoutError, _as_root, _finish, _reader, _require

IEMOCAP_CLASSES = ("ang", "hap", "neu", "sad")
_IEMOCAP_LINE = re.compile(r"\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[")


def _read_dialog(
    txt: Path,
    root: Path,
    session: int,
    records: list[ClipRecord],
    missing: list[str],
    excluded: list[tuple[str, str]],
) -> None:
    """The utterance lines of one dialog's evaluation file, as records, missing or excluded."""
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
            _read_dialog(txt, root, session, records, missing, excluded)
    return _finish("iemocap", records, IEMOCAP_CLASSES, missing, excluded, {"sessions": sessions})
