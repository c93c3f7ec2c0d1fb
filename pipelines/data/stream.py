"""Ray Data streaming of ingested shards into training: decode, crop, log-mel, augment.

    sources --read_parquet (file order shuffled every epoch)--> rows (FLAC bytes, labels, split)
            --map_batches(ClipFeaturizer, CPU actor pool)--> {view_a, view_b} or {spec, length, label}
            --iter_torch_batches(collate_fn=to_torch, local_shuffle_buffer_size)--> torch tensors

Pretraining (`mode="pretrain"`) yields two independently augmented views per clip: log-mixup-exp
with a FIFO memory, then normalisation, random resize crop and SpecAugment. Downstream
(`mode="train"` / `"eval"`) yields one normalised view with or without augmentation, the valid
frame count and the label. Randomness is fresh every epoch: the featurizer seeds each batch from
``(seed, execution index, the batch's clip ids)``. Ray counts executions, and each epoch re-runs
the unmaterialised pipeline. A given clip in a given batch therefore gets the same augmentation
when a run is repeated, and a different one in the next epoch.

Several ingested datasets can form one mixture (AudioSet 10 % + FSD50K) with per-source weights:
a weight of 2 reads each of the source's shards twice per epoch, 0.5 reads half of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from mast_core.audio import decode_audio
from mast_core.augment import LogMixupExp, RandomResizeCrop, SpecAugment
from mast_core.features import log_mel, normalize

MODES = ("pretrain", "train", "eval")


class DataConfigError(ValueError):
    """A bad data setting or source; the message names the key or file."""


@dataclass(frozen=True)
class Source:
    """One ingested dataset folder (with manifest.json) in a mixture."""

    path: str
    weight: float = 1.0
    splits: tuple[str, ...] | None = None  # None: every split
    folds: tuple[int, ...] | None = None  # None: every fold (cross-validated tasks select by fold)

    def manifest(self) -> dict:
        path = Path(self.path) / "manifest.json"
        if not path.is_file():
            raise DataConfigError(f"{path} not found: is {self.path!r} the --out folder of `mast ingest`?")
        return json.loads(path.read_text())


@dataclass(frozen=True)
class AugmentSettings:
    mixup_ratio: float = 0.4
    mixup_memory: int = 256
    virtual_crop_scale: tuple[float, float] = (1.0, 1.5)
    freq_scale: tuple[float, float] = (0.6, 1.5)
    time_scale: tuple[float, float] = (0.6, 1.5)
    freq_mask: int = 24
    time_mask: int = 48
    num_freq_masks: int = 1
    num_time_masks: int = 1


@dataclass(frozen=True)
class StreamSettings:
    frames_per_clip: int = 1024
    mode: str = "pretrain"
    batch_size: int = 32  # rows per featurizer call (not the training batch size)
    decode_actors: int = 1  # CPU actors decoding and computing features
    seed: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    augment_downstream: bool = False  # mode "train": augment the single view

    def validate(self) -> None:
        if self.mode not in MODES:
            raise DataConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.frames_per_clip < 16:
            raise DataConfigError(f"frames_per_clip must be >= 16 (one patch), got {self.frames_per_clip}")
        if self.batch_size < 1 or self.decode_actors < 1:
            raise DataConfigError(f"batch_size and decode_actors must be >= 1, got {self.batch_size}, {self.decode_actors}")


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
            str(Path(source.path) / shard["file"])
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
    """Which execution (epoch) of the dataset this actor serves; Ray increments it per run."""
    try:
        import ray.data

        return int(getattr(ray.data.DataContext.get_current(), "_execution_idx", 0))
    except Exception:  # outside Ray (tests, single-process benchmarks)
        return 0


class ClipFeaturizer:
    """Ray Data map_batches callable (one instance per CPU actor; also usable without Ray)."""

    def __init__(
        self,
        settings: StreamSettings,
        mean: float,
        std: float,
        splits: tuple[str, ...] | None = None,
        folds: tuple[int, ...] | None = None,
    ) -> None:
        torch.set_num_threads(1)  # one actor per CPU: intra-op threads would oversubscribe
        self.settings = settings
        self.mean, self.std = mean, std
        self.splits = set(splits) if splits else None
        self.folds = {int(fold) for fold in folds} if folds else None
        self.samples = samples_for_frames(settings.frames_per_clip)
        self.execution = _execution_index()
        aug = settings.augment
        self.mixup = LogMixupExp(aug.mixup_ratio, aug.mixup_memory, seed=settings.seed)
        self.crop = RandomResizeCrop(aug.virtual_crop_scale, aug.freq_scale, aug.time_scale, seed=settings.seed)
        self.masks = SpecAugment(aug.freq_mask, aug.time_mask, aug.num_freq_masks, aug.num_time_masks, seed=settings.seed)

    def _reseed(self, ids: list[str]) -> np.random.Generator:
        digest = hashlib.sha1(f"{self.settings.seed}:{self.execution}:{ids[0]}:{ids[-1]}:{len(ids)}".encode()).digest()
        seed = int.from_bytes(digest[:8], "little")
        for offset, op in enumerate((self.mixup, self.crop, self.masks)):
            op.generator.manual_seed(seed + offset)
        return np.random.default_rng(seed)

    def _crop_or_pad(self, wave: torch.Tensor, rng: np.random.Generator, random_offset: bool) -> tuple[torch.Tensor, int]:
        length = wave.numel()
        if length >= self.samples:
            offset = int(rng.integers(0, length - self.samples + 1)) if random_offset else (length - self.samples) // 2
            return wave[offset : offset + self.samples], self.settings.frames_per_clip
        padded = torch.zeros(self.samples)
        padded[:length] = wave
        return padded, max(frames_for_samples(length), 16)

    def _augment(self, spec: torch.Tensor) -> torch.Tensor:
        return self.masks(self.crop(normalize(self.mixup(spec), self.mean, self.std)))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = [
            i
            for i, split in enumerate(batch["split"])
            if (self.splits is None or split in self.splits)
            and (self.folds is None or (batch["fold"][i] == batch["fold"][i] and int(batch["fold"][i]) in self.folds))
        ]
        ids = [str(batch["id"][i]) for i in keep]
        mode = self.settings.mode
        if not keep:
            return self._empty(mode)
        rng = self._reseed(ids)
        waves, frames = zip(*(self._crop_or_pad(decode_audio(batch["audio"][i]), rng, mode != "eval") for i in keep))
        spec = log_mel(torch.stack(waves))  # (B, 128, frames_per_clip), one batched pass
        if mode == "pretrain":
            return {"view_a": self._augment(spec).numpy(), "view_b": self._augment(spec).numpy(), "id": np.asarray(ids)}
        if mode == "train" and self.settings.augment_downstream:
            features = self._augment(spec)
        else:
            features = normalize(spec, self.mean, self.std)
        labels = [batch["label_indices"][i] for i in keep]
        return {
            "spec": features.numpy(),
            "length": np.asarray(frames, dtype=np.int64),
            "label": np.asarray([int(label[0]) if len(label) else -1 for label in labels], dtype=np.int64),
            "id": np.asarray(ids),
        }

    def _empty(self, mode: str) -> dict[str, np.ndarray]:
        shape = (0, 128, self.settings.frames_per_clip)
        if mode == "pretrain":
            return {"view_a": np.zeros(shape, np.float32), "view_b": np.zeros(shape, np.float32), "id": np.asarray([], dtype=str)}
        return {
            "spec": np.zeros(shape, np.float32),
            "length": np.zeros(0, np.int64),
            "label": np.zeros(0, np.int64),
            "id": np.asarray([], dtype=str),
        }


class TorchCollate(NumpyBatchCollateFn):
    """``collate_fn`` for ``iter_torch_batches``: numeric arrays become tensors, clip ids stay strings."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor | list[str]]:
        return {key: value.tolist() if value.dtype.kind in "OUS" else torch.as_tensor(value) for key, value in batch.items()}


to_torch = TorchCollate()


def build_stream(
    sources: list[Source],
    settings: StreamSettings,
    stats: tuple[float, float] | None = None,
):
    """A lazy Ray Dataset of features; iterate it once per epoch (it re-executes with new randomness)."""
    import ray.data
    from ray.data import ActorPoolStrategy, FileShuffleConfig

    settings.validate()
    files = mixture_files(sources, settings.seed)
    mean, std = stats if stats is not None else normalisation_stats(sources)
    splits = tuple(sorted({s for source in sources for s in (source.splits or ())})) or None
    folds = tuple(sorted({f for source in sources for f in (source.folds or ())})) or None
    # Ray 2.60's file-indexer reader (datasource v2) needs 2-4 s of planning and worker start-up
    # before its first block; the classic reader streams after ~0.2 s. One block per shard file
    # (row groups of 256 clips inside) keeps the decoding actors busy without tiny read tasks.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    dataset = ray.data.read_parquet(
        files,
        shuffle=FileShuffleConfig(seed=settings.seed) if settings.mode != "eval" else None,
        override_num_blocks=len(files),
    ).select_columns(["id", "audio", "label_indices", "split"] + (["fold"] if folds else []))
    return dataset.map_batches(
        ClipFeaturizer,
        fn_constructor_kwargs={"settings": settings, "mean": mean, "std": std, "splits": splits, "folds": folds},
        batch_size=settings.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=settings.decode_actors),
        num_cpus=1,
    )
