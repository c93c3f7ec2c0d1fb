"""Batched spectrogram augmentations for SS-MAST pretraining.

Each augmentation is a plain class whose ``__call__`` maps a log-mel batch ``(B, n_mels, T)`` to a
new batch of the same shape. The batch is never modified in place (callers may pass read-only or
shared tensors). All randomness comes from the object's own ``torch.Generator`` (on the CPU, then
moved to the batch's device), so the same ``seed`` and the same calls give identical output on any
device, independently of the global RNG.

The SS-MAST view pipeline, in the order of BYOL-A and the MAST authors' code
(:class:`mast_core.views.ViewMaker` runs it, with the mixing domain as a setting)::

    mixup = LogMixupExp(ratio=0.4, seed=0)          # on normalised log-mel (BYOL-A's order)
    crop = RandomResizeCrop(seed=1)                  # on normalised log-mel: 0 = dataset mean
    masks = SpecAugment(seed=2)                      # optional, also on normalised log-mel

    specs = normalize(log_mel(waves), stats.mean, stats.std)    # (B, 128, T)
    view = masks(crop(mixup(specs)))

``RandomResizeCrop`` fills the area outside the clip with zeros and ``SpecAugment`` masks with
``mask_value=0.0`` by default: on normalised features both mean "the dataset's average level",
whereas on raw log power 0 would be a loud, flat band.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _make_generator(seed: int | None) -> torch.Generator:
    """A private CPU generator: seeded if ``seed`` is given, else from fresh OS entropy."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _check_batch(batch: torch.Tensor, who: str) -> None:
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(batch).__name__}")
    if batch.dim() != 3:
        raise ValueError(f"{who} expects a (batch, n_mels, frames) log-mel batch, got shape {tuple(batch.shape)}")
    if not batch.is_floating_point():
        raise TypeError(f"{who} expects floating-point log-mels, got {batch.dtype}")


def _check_scale_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 < low <= high):
        raise ValueError(f"{name} must satisfy 0 < low <= high (finite), got {value!r}")
    return low, high


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class LogMixupExp:
    """BYOL-A's log-mixup-exp: mix each clip with a random earlier clip, in the power domain.

    For each clip ``x`` a partner ``z`` is drawn from a FIFO memory of clips seen in earlier calls,
    ``lambda ~ U[0, ratio)`` per clip, and the output is
    ``log((1 - lambda) * exp(x) + lambda * exp(z))``, computed with ``logaddexp`` so that large
    log-powers cannot overflow. Then the batch's own (un-mixed) clips are pushed into the memory,
    the oldest evicted first; with an empty memory (the first call) the batch passes through
    unchanged but is still pushed.

    Two domains (``AugmentSettings.mixup_domain``): on **normalised** log-mel, as BYOL-A applies
    it, ``exp`` of the standardised values is a soft maximum in which the clip keeps most bins
    (about 5 % go to the partner at ratio 0.4 on the demo's data). On **natural-log power** (as
    :func:`mast_core.features.log_mel` returns it) ``exp`` gives back filterbank power and the mix
    is a physical superposition; there the partner dominates far more bins (about 36 %), which
    made SS-MAST collapse (docs/augmentation.md).

    Partners with a different number of frames are fitted to ``x``: longer ones are cropped at a
    random offset, shorter ones are repeated in time (a padding value would inject silence or a
    flat band that real backgrounds do not have). All clips must have the same number of mel bins.

    Example::

        mixup = LogMixupExp(ratio=0.4, memory_size=256, seed=0)
        for waves in loader:
            specs = log_mel(waves)       # (B, 128, T), natural-log power
            mixed = mixup(specs)         # same shape; ``specs`` is left untouched
    """

    def __init__(self, ratio: float = 0.4, memory_size: int = 256, seed: int | None = None) -> None:
        if not (isinstance(ratio, (int, float)) and 0.0 <= ratio <= 1.0):
            raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
        if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 1:
            raise ValueError(f"memory_size must be an integer >= 1, got {memory_size!r}")
        self.ratio = float(ratio)
        self.memory_size = memory_size
        self.generator = _make_generator(seed)
        self._memory: deque[torch.Tensor] = deque(maxlen=memory_size)

    @property
    def memory(self) -> tuple[torch.Tensor, ...]:
        """The stored clips, oldest first, each ``(n_mels, T)``."""
        return tuple(self._memory)

    def clear(self) -> None:
        """Forget every stored clip (for example between unrelated datasets)."""
        self._memory.clear()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Mix each clip with a partner from the memory, then push the batch's own clips."""
        mixed = self.mix(batch, self.draw(batch))
        self.push(batch)
        return mixed

    def draw(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Partners ``(B, n_mels, T)`` from the memory and mixing weights ``(B,)`` for ``batch``,
        without mixing or pushing (None while the memory is empty). Two views that should share
        their partner and weight (:meth:`mix` each with the same draw) call this once."""
        _check_batch(batch, "LogMixupExp")
        batch_size, mel_bins, frames = batch.shape
        if self._memory and self._memory[0].shape[0] != mel_bins:
            raise ValueError(f"LogMixupExp memory holds clips with {self._memory[0].shape[0]} mel bins, got a batch with {mel_bins}")
        if not self._memory or batch_size == 0:
            return None
        picks = torch.randint(len(self._memory), (batch_size,), generator=self.generator)
        weights = torch.rand(batch_size, generator=self.generator, dtype=torch.float64) * self.ratio
        partners = torch.stack([self._fit(self._memory[index], frames) for index in picks.tolist()])
        return partners.to(device=batch.device, dtype=batch.dtype), weights

    def mix(self, batch: torch.Tensor, drawn: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """``log((1 - lambda) e^x + lambda e^z)`` for a :meth:`draw` (a copy of ``batch`` for None)."""
        _check_batch(batch, "LogMixupExp")
        if drawn is None:
            return batch.clone()
        partners, weights = drawn
        # log((1 - l) e^x + l e^z) = logaddexp(x + log(1 - l), z + log(l)); l = 0 gives log(0) = -inf,
        # which logaddexp turns back into exactly x.
        keep = torch.log1p(-weights).to(device=batch.device, dtype=batch.dtype)[:, None, None]
        mix = torch.log(weights).to(device=batch.device, dtype=batch.dtype)[:, None, None]
        return torch.logaddexp(batch + keep, partners.to(batch.dtype) + mix)

    def _fit(self, clip: torch.Tensor, frames: int) -> torch.Tensor:
        """Crop (random offset) or repeat ``clip`` along time to exactly ``frames`` frames."""
        length = clip.shape[-1]
        if length > frames:
            offset = int(torch.randint(length - frames + 1, (1,), generator=self.generator))
            return clip[:, offset : offset + frames]
        if length < frames:
            return clip.repeat(1, -(-frames // length))[:, :frames]
        return clip

    def push(self, batch: torch.Tensor) -> None:
        """Store the batch's clips (the newest ``memory_size``), evicting the oldest: once per batch."""
        _check_batch(batch, "LogMixupExp")
        # Own copies: the caller may reuse or overwrite its batch buffer after we return.
        newest = batch.detach()[-self.memory_size :]
        self._memory.extend(clip.clone() for clip in newest)


class RandomResizeCrop:
    """BYOL-A's random resize crop, for a whole batch with one ``affine_grid`` + ``grid_sample``.

    Each clip is placed at the centre of a zero-filled virtual canvas ``virtual_crop_scale`` times
    its size (``(freq, time)`` factors, each >= 1); a crop of ``freq_scale`` x ``time_scale`` times
    the clip's size (per-clip uniform draws, capped at the canvas) is taken at a random position
    in the canvas and resized bilinearly back to the clip's shape. Crops smaller than the clip
    zoom in (stretch pitch and time); larger ones zoom out and bring in canvas zeros. Sizes and
    offsets are continuous, so the whole batch is one sampling grid with no per-clip loop.

    Apply it to normalised log-mel, where the canvas zeros equal the dataset mean.

    Example::

        crop = RandomResizeCrop(virtual_crop_scale=(1.0, 1.5), freq_scale=(0.6, 1.5),
                                time_scale=(0.6, 1.5), seed=0)
        views = crop(normalize(specs, stats.mean, stats.std))   # same shape as the input
    """

    def __init__(
        self,
        virtual_crop_scale: Sequence[float] = (1.0, 1.5),
        freq_scale: Sequence[float] = (0.6, 1.5),
        time_scale: Sequence[float] = (0.6, 1.5),
        seed: int | None = None,
    ) -> None:
        if len(virtual_crop_scale) != 2:
            raise ValueError(f"virtual_crop_scale must be a (freq, time) pair, got {virtual_crop_scale!r}")
        canvas_freq, canvas_time = float(virtual_crop_scale[0]), float(virtual_crop_scale[1])
        if not all(math.isfinite(factor) and factor >= 1.0 for factor in (canvas_freq, canvas_time)):
            raise ValueError(f"virtual_crop_scale factors must be finite and >= 1, got {virtual_crop_scale!r}")
        self.virtual_crop_scale = (canvas_freq, canvas_time)
        self.freq_scale = _check_scale_range("freq_scale", freq_scale)
        self.time_scale = _check_scale_range("time_scale", time_scale)
        self.generator = _make_generator(seed)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        _check_batch(batch, "RandomResizeCrop")
        batch_size = batch.shape[0]
        draws = torch.rand(batch_size, 4, generator=self.generator, dtype=torch.float64)
        # All lengths are in units of the clip's own height / width, so one formula serves any T.
        canvas_freq, canvas_time = self.virtual_crop_scale
        (freq_low, freq_high), (time_low, time_high) = self.freq_scale, self.time_scale
        crop_freq = (freq_low + draws[:, 0] * (freq_high - freq_low)).clamp(max=canvas_freq)
        crop_time = (time_low + draws[:, 1] * (time_high - time_low)).clamp(max=canvas_time)
        top = draws[:, 2] * (canvas_freq - crop_freq)  # crop's edge, measured from the canvas edge
        left = draws[:, 3] * (canvas_time - crop_time)
        # Crop centre relative to the clip (the clip sits centred on the canvas), then mapped to
        # grid_sample's [-1, 1] coordinates (align_corners=False: -1 and 1 are the clip's outer edges).
        centre_freq = 2.0 * (top + crop_freq / 2 - (canvas_freq - 1.0) / 2) - 1.0
        centre_time = 2.0 * (left + crop_time / 2 - (canvas_time - 1.0) / 2) - 1.0
        theta = torch.zeros(batch_size, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = crop_time  # grid x is the width axis = time
        theta[:, 0, 2] = centre_time
        theta[:, 1, 1] = crop_freq  # grid y is the height axis = frequency
        theta[:, 1, 2] = centre_freq
        # grid_sample has no float16 CPU kernel everywhere: sample in at least float32.
        work_dtype = batch.dtype if batch.dtype == torch.float64 else torch.float32
        images = batch.to(work_dtype).unsqueeze(1)  # (B, 1, n_mels, T)
        grid = F.affine_grid(theta.to(device=batch.device, dtype=work_dtype), list(images.shape), align_corners=False)
        cropped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return cropped.squeeze(1).to(batch.dtype)


class SpecAugment:
    """SpecAugment frequency and time masks, drawn independently per clip, fully vectorised.

    Each clip gets ``num_freq_masks`` bands of whole mel rows and ``num_time_masks`` bands of
    whole frames set to ``mask_value``. Widths are uniform integers in ``[0, max]`` (``max`` capped
    at the clip's number of bins / frames, so short clips are fine) and each band lies wholly
    inside the clip; bands may overlap. Masks are built with ``arange`` comparisons for the whole
    batch at once, with no Python loop over clips.

    The default ``mask_value=0.0`` is the dataset mean on normalised log-mel (use it there).

    Example::

        masks = SpecAugment(freq_mask=48, time_mask=192, num_freq_masks=2, num_time_masks=2, seed=0)
        masked = masks(views)            # (B, n_mels, T); ``views`` is left untouched
    """

    def __init__(
        self,
        freq_mask: int = 48,
        time_mask: int = 192,
        num_freq_masks: int = 2,
        num_time_masks: int = 2,
        mask_value: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.freq_mask = _check_count("freq_mask", freq_mask)
        self.time_mask = _check_count("time_mask", time_mask)
        self.num_freq_masks = _check_count("num_freq_masks", num_freq_masks)
        self.num_time_masks = _check_count("num_time_masks", num_time_masks)
        if not isinstance(mask_value, (int, float)) or isinstance(mask_value, bool):
            raise ValueError(f"mask_value must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)
        self.generator = _make_generator(seed)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        _check_batch(batch, "SpecAugment")
        batch_size, mel_bins, frames = batch.shape
        freq_masked = self._bands(batch_size, mel_bins, self.freq_mask, self.num_freq_masks)  # (B, n_mels)
        time_masked = self._bands(batch_size, frames, self.time_mask, self.num_time_masks)  # (B, T)
        masked = freq_masked[:, :, None] | time_masked[:, None, :]
        return batch.masked_fill(masked.to(batch.device), self.mask_value)

    def _bands(self, batch_size: int, size: int, max_width: int, count: int) -> torch.Tensor:
        """``(batch_size, size)`` bool: the union of ``count`` random bands per row."""
        max_width = min(max_width, size)
        if count == 0 or max_width == 0:
            return torch.zeros(batch_size, size, dtype=torch.bool)
        # float64 draws: with float32, rand * (max + 1) can round up to max + 1 for wide masks.
        width_draws, start_draws = torch.rand(2, batch_size, count, generator=self.generator, dtype=torch.float64)
        widths = (width_draws * (max_width + 1)).long().clamp(max=max_width)  # uniform on {0, ..., max}
        starts = torch.minimum((start_draws * (size - widths + 1)).long(), size - widths)  # band inside the clip
        positions = torch.arange(size)
        inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])  # (B, count, size)
        return inside.any(dim=1)
