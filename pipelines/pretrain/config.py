"""The typed pretraining config (``configs/pretrain/*.yaml``): every key, its default and its check.

A YAML file is loaded with :func:`pipelines.common.config.load_config`; an unknown key or a bad
value raises :class:`~pipelines.common.config.ConfigError` naming it, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mast_core.registry import ARCHITECTURES, OBJECTIVES, check_pairing
from mast_core.views import AugmentSettings
from pipelines.common.config import ConfigError, build, require
from pipelines.data.stream import FEATURE_PATHS, Source


@dataclass
class SourceConfig:
    path: str
    weight: float = 1.0
    splits: list[str] | None = None

    def to_source(self) -> Source:
        return Source(self.path, self.weight, tuple(self.splits) if self.splits else None)


@dataclass
class DataSection:
    sources: list[SourceConfig] = field(default_factory=list)
    # Held-out slice for a validation loss: the first val_clips clips of these sources, augmented
    # once and kept fixed, so the curve compares like with like.
    validation_sources: list[SourceConfig] = field(default_factory=list)
    val_clips: int = 64
    frames_per_clip: int = 1024
    decode_actors: int = 1
    # where the log-mel is computed: "device" (the train worker, from shipped waveforms), "tasks"
    # (the decoding tasks, on the cluster's CPUs) or "auto" (device with GPUs, tasks without)
    features: str = "auto"
    featurize_batch: int = 32
    shuffle_buffer: int = 256
    seed: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("sources: give at least one ingested dataset folder")
        require(self, val_clips=">= 1", frames_per_clip=">= 16", decode_actors=">= 1", featurize_batch=">= 1", shuffle_buffer=">= 0")
        if self.features not in ("auto", *FEATURE_PATHS):
            raise ConfigError(f"features: {self.features!r} is not one of {', '.join(map(repr, ('auto', *FEATURE_PATHS)))}")


@dataclass
class ModelSection:
    arch: str = "mast_tiny"  # one of mast_core.registry.ARCHITECTURES
    objective: str = "ssmast"  # one of mast_core.registry.OBJECTIVES
    imagenet: str | None = None
    drop_path_rate: float = 0.0

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch: {self.arch!r} is not one of {list(ARCHITECTURES)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective: {self.objective!r} is not one of {list(OBJECTIVES)}")
        try:
            check_pairing(self.objective, self.arch)
        except ValueError as error:
            raise ConfigError(f"objective: {error}") from None
        if self.imagenet is not None and not Path(self.imagenet).is_file():
            raise ConfigError(f"imagenet: {self.imagenet} not found")


@dataclass
class ObjectiveSection:
    proj_dim: int = 256
    head: Literal["linear", "mlp"] = "linear"
    queue_size: int = 65536
    temperature: float = 0.07
    patch_drop: float = 0.2
    momentum: Literal["cosine", "fixed"] = "cosine"
    momentum_base: float = 0.99
    momentum_final: float = 1.0
    ssast_masked: int = 400

    def validate(self) -> None:
        if not 0.0 <= self.patch_drop < 1.0:
            raise ConfigError(f"patch_drop: must be in [0, 1), got {self.patch_drop}")
        for key in ("momentum_base", "momentum_final"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)!r}")
        require(self, temperature="> 0", queue_size=">= 1", proj_dim=">= 1")


@dataclass
class OptimSection:
    lr: float = 5e-4
    weight_decay: float = 0.05
    batch_size: int = 64  # per worker, per micro-step
    grad_accum: int = 1
    warmup_steps: int = 1000
    total_steps: int = 100000
    clip_grad: float = 3.0

    def validate(self) -> None:
        require(
            self,
            lr="> 0",
            weight_decay=">= 0",
            batch_size=">= 1",
            grad_accum=">= 1",
            total_steps=">= 1",
            warmup_steps=">= 0",
            clip_grad="> 0",
        )


@dataclass
class RunSection:
    name: str = "pretrain"
    storage: str = "runs"
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    # custom Ray resources each Train worker also needs, e.g. {mast_worker: 1} to place one per node
    worker_resources: dict[str, float] = field(default_factory=dict)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    max_failures: int = 3
    log_every: int = 10
    val_every: int = 500
    tracking_uri: str | None = None
    experiment: str = "mast-pretrain"
    seed: int = 0
    torch_threads: int = 1
    # a local folder: each rank writes which clips went into each step (pipelines.pretrain.state.DataTrace)
    data_trace: str = ""

    def validate(self) -> None:
        if self.data_trace and "://" in self.data_trace:
            raise ConfigError(f"data_trace: a local folder, got {self.data_trace!r}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name: must be a non-empty name without '/', got {self.name!r}")
        require(self, num_workers=">= 1", cpus_per_worker="> 0", torch_threads=">= 1")
        require(self, checkpoint_every=">= 1", keep_checkpoints=">= 1", log_every=">= 1", val_every=">= 1")
        if any(not value > 0 for value in self.worker_resources.values()) or {"CPU", "GPU"} & set(self.worker_resources):
            raise ConfigError(
                f"worker_resources: positive amounts of custom resources (CPU and GPU have their own keys), got {self.worker_resources}"
            )
        if self.max_failures < -1:
            raise ConfigError(f"max_failures: -1 (unlimited) or >= 0, got {self.max_failures}")


@dataclass
class PretrainConfig:
    run: RunSection = field(default_factory=RunSection)
    model: ModelSection = field(default_factory=ModelSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    data: DataSection = field(default_factory=DataSection)

    def validate(self) -> None:
        if not self.data.sources:  # a config without a data section, where DataSection.validate does not run
            raise ConfigError("data.sources: give at least one ingested dataset folder")
        if self.run.checkpoint_every > self.optim.total_steps:
            raise ConfigError(f"run.checkpoint_every ({self.run.checkpoint_every}) exceeds optim.total_steps ({self.optim.total_steps})")


def load_config_dict(data: dict) -> PretrainConfig:
    return build(PretrainConfig, data)
