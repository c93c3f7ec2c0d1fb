"""Waveforms to model inputs, batched on the consumer's device: log-mel, normalisation, augmentation.

The data stream ships fixed-length int16 waveforms (``pipelines.data.stream``); the process that
trains or embeds turns each batch into features here, on its own device (the GPU when there is
one), so the object store carries 2 bytes per sample instead of two float32 spectrograms per clip.

    maker = ViewMaker(mean, std, augment=AugmentSettings(), seed=0, views=2)
    view_a, view_b = maker(waves, ids, epoch)        # waves: (B, samples) int16 or float

Without ``augment`` every view is ``normalize(log_mel(wave))``. With it, each view is, in the
order of the method's sources (BYOL-A, the MAST authors' code): normalisation, log-mixup-exp (with
a FIFO memory of earlier clips, kept by this maker across batches and filled once per batch),
random resize crop and SpecAugment. Two settings shape the mixing (docs/augmentation.md has the
ablation that chose the defaults):

- ``mixup_domain``: ``"normalized"`` mixes the normalised log-mel (BYOL-A's order);
  ``"log_power"`` mixes the natural-log mel power before normalising (physically a superposition
  of the two sounds, where the partner dominates far more bins).
- ``mixup_partners``: ``"shared"`` gives both views of a clip the same partner and weight, so the
  views differ only by crop and masks; ``"independent"`` draws one per view.

Randomness is reseeded every batch from ``(seed, epoch, the batch's clip ids)``, so a batch gets
the same augmentation when a run is repeated and a fresh one the next epoch, independently of the
device and of the global RNG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from mast_core.augment import LogMixupExp, RandomResizeCrop, SpecAugment
from mast_core.features import log_mel, normalize

INT16_SCALE = 32768.0  # int16 PCM -> float in [-1, 1), as soundfile reads 16-bit audio


@dataclass(frozen=True)
class AugmentSettings:
    """The view chain's settings (``data.augment`` in a pretraining config).

    The defaults are the chain chosen on validation accuracy in the ablation of docs/augmentation.md
    (on the demo's data): all three augmentations, with a gentle crop (at most 10 % stretch) and
    narrow masks, mixing normalised log-mel with one partner per view. BYOL-A's wider crop
    (``freq_scale`` and ``time_scale`` (0.6, 1.5), ``virtual_crop_scale`` (1.0, 1.5)) lowered
    the probe there. Mask widths are in bins and frames: scale ``time_mask`` with the clip length
    (48 of 1,024 frames, 5 of 98).
    """

    mixup_ratio: float = 0.4
    mixup_memory: int = 256
    virtual_crop_scale: tuple[float, float] = (1.0, 1.1)
    freq_scale: tuple[float, float] = (0.9, 1.1)
    time_scale: tuple[float, float] = (0.9, 1.1)
    freq_mask: int = 12
    time_mask: int = 48
    num_freq_masks: int = 1
    num_time_masks: int = 1
    mixup_domain: Literal["normalized", "log_power"] = "normalized"
    mixup_partners: Literal["shared", "independent"] = "independent"

    def __post_init__(self) -> None:
        if self.mixup_domain not in ("normalized", "log_power"):
            raise ValueError(f"mixup_domain must be 'normalized' or 'log_power', got {self.mixup_domain!r}")
        if self.mixup_partners not in ("shared", "independent"):
            raise ValueError(f"mixup_partners must be 'shared' or 'independent', got {self.mixup_partners!r}")


def to_float(waves: torch.Tensor) -> torch.Tensor:
    """int16 PCM (as the stream ships it) or float waveforms -> float32 in [-1, 1)."""
    if waves.dtype == torch.int16:
        return waves.float() / INT16_SCALE
    return waves.float()


def batch_seed(seed: int, epoch: int, ids: Sequence[str]) -> int:
    """The seed of one batch's augmentation: its clips, the epoch and the run's seed."""
    if not ids:
        return seed
    digest = hashlib.sha1(f"{seed}:{epoch}:{ids[0]}:{ids[-1]}:{len(ids)}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class ViewMaker:
    """``views`` feature tensors ``(B, 128, frames)`` per waveform batch, on the batch's device."""

    def __init__(self, mean: float, std: float, augment: AugmentSettings | None = None, seed: int = 0, views: int = 1) -> None:
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.mean, self.std, self.seed, self.views = float(mean), float(std), int(seed), int(views)
        self.augment = augment
        if augment is not None:
            self.mixup = LogMixupExp(augment.mixup_ratio, augment.mixup_memory, seed=seed)
            self.crop = RandomResizeCrop(augment.virtual_crop_scale, augment.freq_scale, augment.time_scale, seed=seed)
            self.masks = SpecAugment(augment.freq_mask, augment.time_mask, augment.num_freq_masks, augment.num_time_masks, seed=seed)

    @staticmethod
    def features(signal: torch.Tensor) -> torch.Tensor:
        """Natural-log mel power of a waveform batch ``(B, samples)`` (no normalisation, no
        augmentation); a batch of it already computed ``(B, 128, frames)`` passes through."""
        if signal.dim() == 3:
            return signal.float()
        return log_mel(to_float(signal))

    def __call__(self, signal: torch.Tensor, ids: Sequence[str] = (), epoch: int = 0) -> list[torch.Tensor]:
        """The views of a batch of waveforms ``(B, samples)`` or of their log-mel ``(B, 128, frames)``."""
        spec = self.features(signal)
        if self.augment is None:
            view = normalize(spec, self.mean, self.std)
            return [view] * self.views
        seed = batch_seed(self.seed, epoch, list(ids))
        for offset, op in enumerate((self.mixup, self.crop, self.masks)):
            op.generator.manual_seed(seed + offset)
        normalized_first = self.augment.mixup_domain == "normalized"
        base = self._remembered(spec)
        share = self.augment.mixup_partners == "shared"
        shared = self.mixup.draw(base) if share else None
        views = []
        for _ in range(self.views):
            mixed = self.mixup.mix(base, shared if share else self.mixup.draw(base))
            views.append(self.masks(self.crop(mixed if normalized_first else normalize(mixed, self.mean, self.std))))
        self.mixup.push(base)  # once per batch: the memory holds distinct clips, never this batch's own
        return views

    def _remembered(self, spec: torch.Tensor) -> torch.Tensor:
        """What the mixup memory keeps of a batch's log-mel: normalised first or the raw log-power."""
        return normalize(spec, self.mean, self.std) if self.augment.mixup_domain == "normalized" else spec

    def remember(self, signal: torch.Tensor) -> None:
        """Put a batch into the mixup memory exactly as a call would, without making its views: a
        resumed run rebuilds the memory from the batches it skips."""
        if self.augment is not None:
            self.mixup.push(self._remembered(self.features(signal)))

    def forget(self) -> None:
        """Empty the mixup memory (the pretraining loop does at each epoch's start, so the memory is a
        function of the position in the epoch)."""
        if self.augment is not None:
            self.mixup.clear()


def objective_views(objective, mean: float, std: float, augment: AugmentSettings | None, seed: int = 0) -> ViewMaker:
    """The :class:`ViewMaker` an objective trains on: as many views as it reads (``objective.views``),
    augmented unless the objective trains on clean spectrograms (``augmented_views`` False: SSAST,
    whose masked-patch task is its own corruption)."""
    return ViewMaker(mean, std, augment if objective.augmented_views else None, seed=seed, views=len(objective.views))
