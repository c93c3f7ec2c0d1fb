"""Ray Data streaming of ingested shards into training: decode and crop on CPUs, features on the device.

    sources --read_parquet (file order shuffled every epoch)--> rows (FLAC bytes, labels, split)
            --map_batches(decode_clips, CPU tasks)--> {wave: int16 (B, samples), length, label, id}
            --iter_torch_batches(collate_fn=to_torch, local_shuffle_buffer_size)--> torch tensors
            --mast_core.views.ViewMaker, in the train worker on its device--> log-mel views

Ray Data does only what needs no model and no state: filter the wanted splits or folds, decode,
and cut each clip to ``frames_per_clip`` (a random window in the training modes, the centre in
``eval``; shorter clips zero-padded, their valid frame count in ``length``). The waveforms travel as
an Arrow tensor column of int16, 2 bytes a sample, where two float32 log-mel views took 16. Log-mel,
normalisation and the augmentations (log-mixup-exp with its memory, random resize crop, SpecAugment)
run batched in the consumer (:class:`mast_core.views.ViewMaker`), which also owns the mixup memory.

Decoding is a stateless task, not an actor: Ray reuses its worker processes (and their imported
torch) from one epoch to the next, so a new epoch's first batch comes after a fraction of a second
instead of an actor's start-up (``benchmarks/data_pipeline.py``). Randomness is fresh every epoch:
each batch's crop offsets are seeded from ``(seed, execution index, the batch's clip ids)``. Ray
counts executions, and each epoch re-runs the unmaterialised pipeline. A given clip in a given
batch therefore gets the same window when a run is repeated, and a different one in the next epoch.

A clip whose bytes no longer decode (a shard damaged after ingest) does not stop the job: its
row comes through with an ``error`` (the decoder's message; ``""`` for every good clip) and a
silent signal, and the consumer drops and counts it (:func:`usable_batches`). A shard that is
missing or not a readable Parquet file (truncated) fails the job before any work, naming the file
(:func:`read_paths`).

Several ingested datasets can form one mixture (AudioSet 10 % + FSD50K) with per-source weights:
a weight of 2 reads each of the source's shards twice per epoch, 0.5 reads half of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from mast_core.audio import decode_audio
from mast_core.views import AugmentSettings, ViewMaker, batch_seed
from pipelines.common import storage

__all__ = [
    "AugmentSettings",
    "DataConfigError",
    "Source",
    "StreamSettings",
    "build_stream",
    "clip_input",
    "decode_clips",
    "epoch_files",
    "epoch_stream",
    "shard_errors_named",
    "shard_problem",
    "to_torch",
    "usable_batches",
]

MODES = ("pretrain", "train", "eval")
FEATURE_PATHS = ("device", "tasks")


class DataConfigError(ValueError):
    """A bad data setting or source; the message names the key or file."""


@dataclass(frozen=True)
class Source:
    """One ingested dataset folder (with manifest.json) in a mixture: a local path or a URI."""

    path: str
    weight: float = 1.0
    splits: tuple[str, ...] | None = None  # None: every split
    folds: tuple[int, ...] | None = None  # None: every fold (cross-validated tasks select by fold)

    def manifest(self) -> dict:
        location = storage.join(self.path, "manifest.json")
        try:
            found = storage.is_file(location)
        except storage.StorageError as error:
            raise DataConfigError(str(error)) from None
        if not found:
            raise DataConfigError(f"{location} not found: is {self.path!r} the --out folder of `mast ingest`?")
        return json.loads(storage.read_text(location))


@dataclass(frozen=True)
class StreamSettings:
    frames_per_clip: int = 1024
    mode: str = "pretrain"
    batch_size: int = 32  # rows per decoding task (not the training batch size)
    decode_actors: int = 1  # decoding tasks in flight at once (one CPU each)
    seed: int = 0
    features: str = "device"  # "device": ship waveforms; "tasks": the decoding tasks compute the log-mel too

    def validate(self) -> None:
        if self.mode not in MODES:
            raise DataConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.frames_per_clip < 16:
            raise DataConfigError(f"frames_per_clip must be >= 16 (one patch), got {self.frames_per_clip}")
        if self.features not in FEATURE_PATHS:
            raise DataConfigError(f"features must be one of {FEATURE_PATHS}, got {self.features!r}")
        if self.batch_size < 1 or self.decode_actors < 1:
            raise DataConfigError(f"batch_size and decode_actors must be >= 1, got {self.batch_size}, {self.decode_actors}")


def block_bytes(settings: StreamSettings) -> int:
    """Bytes of one decoded batch: the target block size, so that each batch leaves its task at once."""
    per_clip = 4 * 128 * settings.frames_per_clip if settings.features == "tasks" else 2 * samples_for_frames(settings.frames_per_clip)
    return max(1 << 20, settings.batch_size * per_clip)


def clip_input(batch: dict):
    """What a consumer feeds :class:`mast_core.views.ViewMaker`: the log-mel ``spec`` the decoding tasks
    computed (``features="tasks"``) or the int16 waveforms ``wave`` (``"device"``)."""
    return batch["spec"] if "spec" in batch else batch["wave"]


def samples_for_frames(frames: int, sample_rate: int = 16000) -> int:
    """Waveform length that gives exactly ``frames`` log-mel frames (25 ms window, 10 ms hop)."""
    return int(0.025 * sample_rate) + (frames - 1) * int(0.010 * sample_rate)


def frames_for_samples(samples: int, sample_rate: int = 16000) -> int:
    window, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    return 0 if samples < window else 1 + (samples - window) // hop


def mixture_files(sources: list[Source], seed: int = 0) -> list[str]:
    """Shard files of a weighted mixture; shards holding none of a source's splits are left out."""
    if not sources:
        raise DataConfigError("no data sources given")
    files: list[str] = []
    for source in sources:
        if not source.weight > 0:
            raise DataConfigError(f"source {source.path}: weight must be positive, got {source.weight}")
        manifest = source.manifest()
        wanted = set(source.splits) if source.splits else None
        if wanted and not wanted & set(manifest["splits"]):
            raise DataConfigError(f"source {source.path}: none of the splits {sorted(wanted)} exist; it has {sorted(manifest['splits'])}")
        shards = [
            storage.join(source.path, shard["file"])
            for shard in manifest["shards"]
            if shard["rows"] and (wanted is None or wanted & set(shard["splits"]))
        ]
        whole, fraction = divmod(source.weight, 1.0)
        chosen = shards * int(whole)
        if fraction:
            ranked = sorted(shards, key=lambda name: hashlib.sha1(f"{seed}:{name}".encode()).hexdigest())
            chosen += ranked[: max(1, round(fraction * len(shards)))]
        files += chosen
    return files


def normalisation_stats(sources: list[Source]) -> tuple[float, float]:
    """Frame-weighted mean/std over the sources' manifests (stats computed at ingest)."""
    from mast_core.features import FeatureStats, merge_stats

    manifests = [source.manifest() for source in sources]
    parts = [FeatureStats.from_dict(manifest["stats"]) for manifest in manifests if manifest.get("stats")]
    if not parts:
        raise DataConfigError("no normalisation statistics in the sources' manifests")
    merged = merge_stats(parts)
    return merged.mean, merged.std


def _execution_index() -> int:
    """Which execution (epoch) of the dataset this task serves; Ray increments it per run."""
    try:
        import ray.data

        return int(getattr(ray.data.DataContext.get_current(), "_execution_idx", 0))
    except Exception:  # outside Ray (tests, single-process benchmarks)
        return 0


def _wanted(batch: dict[str, np.ndarray], splits: tuple[str, ...] | None, folds: tuple[int, ...] | None) -> list[int]:
    """Rows of the batch in the wanted splits and folds (a row without a fold is in no fold)."""
    split_set = set(splits) if splits else None
    fold_set = {int(fold) for fold in folds} if folds else None
    return [
        i
        for i, split in enumerate(batch["split"])
        if (split_set is None or split in split_set)
        and (fold_set is None or (batch["fold"][i] == batch["fold"][i] and int(batch["fold"][i]) in fold_set))
    ]


def _window(wave: torch.Tensor, samples: int, frames: int, rng: np.random.Generator | None) -> tuple[torch.Tensor, int]:
    """``wave`` cut to ``samples`` (random offset with ``rng``, else the centre) or zero-padded; and
    its valid frame count."""
    length = wave.numel()
    if length >= samples:
        offset = int(rng.integers(0, length - samples + 1)) if rng is not None else (length - samples) // 2
        return wave[offset : offset + samples], frames
    padded = torch.zeros(samples, dtype=wave.dtype)
    padded[:length] = wave
    return padded, max(frames_for_samples(length), 16)


def decode_clips(
    batch: dict[str, np.ndarray],
    settings: StreamSettings,
    splits: tuple[str, ...] | None = None,
    folds: tuple[int, ...] | None = None,
    epoch: int | None = None,
) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function (also usable without Ray): Parquet rows -> the wanted clips as
    fixed-length int16 waveforms ``wave`` ``(B, samples)`` (or, with ``features="tasks"``, their
    natural-log mel power ``spec`` ``(B, 128, frames)`` float32, as ``ViewMaker.features`` computes
    it), ``length`` (valid frames), ``label`` (the first label index, -1 for none), ``id`` and ``error``
    ("" or why the clip did not decode). Crops are drawn from ``(seed, epoch, the clips)``; ``epoch``
    None: Ray's execution index of the dataset."""
    samples = samples_for_frames(settings.frames_per_clip)
    keep = _wanted(batch, splits, folds)
    ids = [str(batch["id"][i]) for i in keep]
    if not keep:
        empty = (
            np.zeros((0, 128, settings.frames_per_clip), np.float32) if settings.features == "tasks" else np.zeros((0, samples), np.int16)
        )
        return {
            "spec" if settings.features == "tasks" else "wave": empty,
            "length": np.zeros(0, np.int64),
            "label": np.zeros(0, np.int64),
            "id": np.asarray([], dtype=str),
            "error": np.asarray([], dtype=str),
        }
    rng = (
        np.random.default_rng(batch_seed(settings.seed, _execution_index() if epoch is None else epoch, ids))
        if settings.mode != "eval"
        else None
    )
    decoded = [_decode_or_flag(batch["audio"][i], samples) for i in keep]
    waves, frames = zip(*(_window(wave, samples, settings.frames_per_clip, rng) for wave, _ in decoded))
    labels = [batch["label_indices"][i] for i in keep]
    waves = torch.stack(waves)
    signal = {"spec": ViewMaker.features(waves).numpy()} if settings.features == "tasks" else {"wave": waves.numpy()}
    return {
        **signal,
        "length": np.asarray(frames, dtype=np.int64),
        "label": np.asarray([int(label[0]) if len(label) else -1 for label in labels], dtype=np.int64),
        "id": np.asarray(ids),
        "error": np.asarray([error for _, error in decoded]),
    }


def _decode_or_flag(data: bytes, samples: int) -> tuple[torch.Tensor, str]:
    """The clip's int16 waveform and ``""``; or, when its bytes do not decode, silence and the reason."""
    try:
        wave = decode_audio(data, dtype="int16")
        if wave.ndim != 1 or wave.numel() == 0:
            raise ValueError(f"no samples (shape {tuple(wave.shape)})")
        return wave, ""
    except Exception as error:  # one damaged clip must not stop the job: the consumer skips and counts it
        return torch.zeros(samples, dtype=torch.int16), f"{type(error).__name__}: {error}"[:300]


def _take(batch: dict, rows) -> dict:
    """The given rows of a collated batch (tensors, or lists for strings)."""
    rows = list(rows)
    index = torch.as_tensor(rows, dtype=torch.long)
    return {key: [value[i] for i in rows] if isinstance(value, list) else value[index.to(value.device)] for key, value in batch.items()}


def _concat(first: dict, second: dict) -> dict:
    return {key: first[key] + second[key] if isinstance(first[key], list) else torch.cat([first[key], second[key]]) for key in first}


def usable_batches(batches, batch_size: int | None, on_skipped):
    """The collated batches of a stream without the clips that failed to decode (their ``error`` is
    set): ``on_skipped(ids, errors)`` hears of each batch's dropped clips. With ``batch_size``, rows
    carry over so that every batch has exactly ``batch_size`` clips (the rest at the end is dropped,
    as ``drop_last`` does); without, a batch just loses its bad rows (and is left out if empty)."""
    carry = None
    for batch in batches:
        errors = batch.get("error") or []
        bad = [i for i, error in enumerate(errors) if error]
        if bad:
            on_skipped([batch["id"][i] for i in bad], [errors[i] for i in bad])
            batch = _take(batch, [i for i, error in enumerate(errors) if not error])
        if batch_size is None:
            if len(batch["id"]):
                yield batch
            continue
        if carry is None and len(batch["id"]) == batch_size:
            yield batch  # the usual case: nothing dropped, nothing carried
            continue
        carry = batch if carry is None else _concat(carry, batch)
        while len(carry["id"]) >= batch_size:
            yield _take(carry, range(batch_size))
            carry = _take(carry, range(batch_size, len(carry["id"])))


class TorchCollate(NumpyBatchCollateFn):
    """``collate_fn`` for ``iter_torch_batches``: numeric arrays become tensors, clip ids stay strings."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor | list[str]]:
        return {key: value.tolist() if value.dtype.kind in "OUS" else torch.as_tensor(value) for key, value in batch.items()}


to_torch = TorchCollate()


def read_paths(files: list[str]):
    """(file system, paths inside it) for ``read_parquet``: the file system given explicitly, so
    that workers reach a bucket with the driver's settings (endpoint, credentials). Every shard's
    Parquet footer is read first: a missing or truncated shard fails here, naming the file, before
    any task starts."""
    resolved = [storage.filesystem(file) for file in files]
    systems = {filesystem.type_name for filesystem, _ in resolved}
    if len(systems) > 1:
        raise DataConfigError(f"the sources of one stream must share a file system, got {sorted(systems)}")
    filesystem, paths = resolved[0][0], [path for _, path in resolved]
    check_shards(dict(zip(paths, files)), filesystem)
    return filesystem, paths


@contextlib.contextmanager
def shard_errors_named(files: list[str], note: str = ""):
    """Around reading ``files``: when reading fails, the shard that went missing or broke since it
    was checked is named in a :class:`DataConfigError` (with ``note``); other errors stay as they were."""
    try:
        yield
    except DataConfigError:
        raise
    except Exception as error:
        problem = shard_problem(files)
        if problem:
            raise DataConfigError(problem + note) from error
        raise


def shard_problem(files: list[str]) -> str | None:
    """The first missing or unreadable shard among ``files`` (URIs), named; None when all read."""
    try:
        read_paths(files)
    except DataConfigError as error:
        return str(error)
    return None


def check_shards(files: dict[str, str], filesystem) -> None:
    """Read the footer of each shard (``path in filesystem -> its URI``), a few at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    def problem(path: str) -> str | None:
        try:
            pq.read_metadata(path, filesystem=filesystem)
            return None
        except FileNotFoundError:
            return f"{files[path]}: shard listed in its manifest.json but missing; restore it or re-run `mast ingest`"
        except Exception as error:  # ArrowInvalid (no footer: truncated), OSError (unreadable)
            return f"{files[path]}: not a readable Parquet shard ({type(error).__name__}: {error}); truncated? restore it or re-run `mast ingest`"

    with ThreadPoolExecutor(max_workers=8) as pool:
        for found in pool.map(problem, sorted(set(files))):
            if found:
                raise DataConfigError(found)


def build_stream(sources: list[Source], settings: StreamSettings):
    """A lazy Ray Dataset of waveform batches (:func:`decode_clips`); iterate it once per epoch (it
    re-executes with new randomness, Ray's execution index as the epoch). Features come from
    :class:`mast_core.views.ViewMaker` in the consumer, with :func:`normalisation_stats` of the sources."""
    return _decoded(sources, mixture_files(sources, settings.seed), settings, shuffle=settings.mode != "eval", epoch=None)


def epoch_files(files: list[str], seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[str]:
    """One rank's shards in one epoch: all shards in an order drawn from ``(seed, epoch)``, then every
    ``world``-th of them from ``rank`` on (each rank streams whole shards, so a rank's clips and their
    order are fixed by the position alone)."""
    if len(files) < world:
        raise DataConfigError(
            f"{len(files)} shards for {world} workers: each worker streams whole shards; "
            "ingest with a smaller --shard-mb or use fewer run.num_workers"
        )
    order = np.random.default_rng([seed, epoch]).permutation(len(files))
    return [files[i] for i in order[rank::world]]


def epoch_stream(sources: list[Source], settings: StreamSettings, epoch: int, rank: int = 0, world: int = 1):
    """(stream, its shard URIs): one rank's stream of one epoch, in an order fixed by
    ``(settings.seed, epoch, rank, world)``: its shards (:func:`epoch_files`) in order, each shard's
    rows in order, Ray's block order kept. The same position gives the same batches, so a resumed
    run can skip what it trained on and continue."""
    files = epoch_files(mixture_files(sources, settings.seed), settings.seed, epoch, rank, world)
    stream = _decoded(sources, files, settings, shuffle=False, epoch=epoch)
    stream.context.execution_options.preserve_order = True
    # built in each train worker every epoch: the job log gets the loop's lines, not Ray Data's
    stream.context.enable_progress_bars = False
    stream.context.print_on_execution_start = False
    return stream, files


def _decoded(sources: list[Source], files: list[str], settings: StreamSettings, shuffle: bool, epoch: int | None):
    import ray.data
    from ray.data import FileShuffleConfig, TaskPoolStrategy

    settings.validate()
    splits = tuple(sorted({s for source in sources for s in (source.splits or ())})) or None
    folds = tuple(sorted({f for source in sources for f in (source.folds or ())})) or None
    # Ray 2.60's file-indexer reader (datasource v2) needs 2-4 s of planning and worker start-up
    # before its first block; the classic reader streams after ~0.2 s. One block per shard file
    # (row groups of 256 clips inside) keeps the decoding tasks busy without tiny read tasks.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    filesystem, paths = read_paths(files)
    dataset = ray.data.read_parquet(
        paths,
        filesystem=filesystem,
        shuffle=FileShuffleConfig(seed=settings.seed) if shuffle else None,
        override_num_blocks=len(files),
    ).select_columns(["id", "audio", "label_indices", "split"] + (["fold"] if folds else []))
    stream = dataset.map_batches(
        decode_clips,
        fn_kwargs={"settings": settings, "splits": splits, "folds": folds, "epoch": epoch},
        batch_size=settings.batch_size,
        batch_format="numpy",
        compute=TaskPoolStrategy(size=settings.decode_actors),
        num_cpus=1,
    )
    # Ray buffers a task's output up to the target block size (128 MiB) before handing it on: a
    # shard's whole decoded output (333 clips, 106 MB at 10 s) then leaves its task at the end, and
    # each epoch's first batch waits 2-3 s for it. A target of one batch streams each batch at once.
    stream.context.target_max_block_size = block_bytes(settings)
    return stream
