"""Dataset layouts: find every clip of a dataset in its published folder layout.

Pure Python (no Ray, no audio decoding): each reader walks a root folder and its metadata files
and returns a :class:`Layout` of :class:`ClipRecord` rows that ``pipelines.data.ingest`` turns into
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

Layout of the package: :mod:`.base` holds the types and helpers, each other module one dataset's
reader (``folder`` and ``manifest`` are the generic ones); this module collects the readers into
:data:`DATASETS` and re-exports the names other code imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .audioset import AUDIOSET_SEGMENTS, _audioset_name, _start_matches, read_audioset
from .base import AUDIO_EXTENSIONS, ClipRecord, DatasetOption, Layout, LayoutError, Reader, reader_spec
from .folder import read_folder
from .fsd50k import read_fsd50k
from .iemocap import IEMOCAP_CLASSES, read_iemocap
from .manifest import read_manifest
from .nsynth import NSYNTH_FAMILIES, read_nsynth
from .speech_commands import SILENCE, SPEECH_COMMANDS_WORDS, UNKNOWN, _silence_segments, read_speech_commands
from .us8k import read_us8k
from .voxceleb1 import read_voxceleb1
from .voxforge import VOXFORGE_LANGUAGES, read_voxforge

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIOSET_SEGMENTS",
    "DATASETS",
    "IEMOCAP_CLASSES",
    "NSYNTH_FAMILIES",
    "SILENCE",
    "SPEECH_COMMANDS_WORDS",
    "UNKNOWN",
    "VOXFORGE_LANGUAGES",
    "ClipRecord",
    "DatasetOption",
    "Layout",
    "LayoutError",
    "Reader",
    "dataset_options",
    "discover",
    "read_audioset",
    "read_folder",
    "read_fsd50k",
    "read_iemocap",
    "read_manifest",
    "read_nsynth",
    "read_speech_commands",
    "read_us8k",
    "read_voxceleb1",
    "read_voxforge",
    # private, imported by the tests of the AudioSet file-name rules and of the silence segmenter
    "_audioset_name",
    "_silence_segments",
    "_start_matches",
]

# ---------------------------------------------------------------------------------------------
# Registry and entry point
# ---------------------------------------------------------------------------------------------

# in the order the datasets were always listed (CLI choices are sorted anyway)
_READERS: tuple[Reader, ...] = (
    read_audioset,
    read_fsd50k,
    read_speech_commands,
    read_voxceleb1,
    read_iemocap,
    read_voxforge,
    read_manifest,
    read_nsynth,
    read_us8k,
    read_folder,
)
DATASETS: dict[str, Reader] = {reader_spec(fn).name: fn for fn in _READERS}
_OPTIONS: dict[str, dict[str, DatasetOption]] = {name: reader_spec(fn).options for name, fn in DATASETS.items()}
assert len(DATASETS) == len(_READERS), "two readers claim the same dataset name"


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
